"""Resumable, cached feature extraction for manifest items (:class:`emofuse.corpora.Item`) with the
registered extractors of :mod:`emofuse.extractors`.

    from emofuse.corpora import prepare
    from emofuse.extract import extract, load_features
    m = prepare("ravdess", "../shared/data")
    report = extract(m, "voice-whisper-tiny.en", workers=2)        # cache: store.feature_cache_dir()
    ids, X = load_features(m, "voice-whisper-tiny.en")

    emofuse extract --corpus ravdess --data ../shared/data --extractor voice-whisper-tiny.en [--workers 2]

Cache layout::

    <cache>/<extractor>-<confighash>/
        config.json                  # extractor name, config, version, model sha256 (informational)
        shard-<stamp>-<pid>-<n>.npz   # keys (corpus/id), fp (input fingerprint), X [n, d], seconds, audio_s

A shard is written to a ``.tmp`` file and renamed atomically, so an interrupted run leaves only whole
shards; the shards themselves are the index (no separate index file can go stale). A re-run computes only
the items whose key is in no shard, or whose input fingerprint (text sha1, or file name + size + content hash)
changed. Failed items are never cached: they are reported (id, message) and retried on the next run.

Voice packing note: a clip's embedding depends on the same-speaker clips that share its 30 s window
(as in analysis). Clips are packed in :func:`emofuse.extractors.speaker_order`, at most ``CHUNK`` of one
speaker at a time; a resumed run packs only the missing clips of a speaker together, so their embeddings
can differ slightly from those of a one-shot run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .corpora.manifest import Item, item_key
from .errors import InputError
from .extractors import EXTRACTORS, Extractor, speaker_order

CHUNK = 64  # items per shard (voice: at most this many clips of one speaker)


# ------------------------------------------------------------------------------------------------ cache

def cache_folder(ex: Extractor, cache: Path | str | None = None) -> Path:
    """``<cache>/<extractor>-<confighash>``; ``cache`` None = :func:`emofuse.store.feature_cache_dir`."""
    from .store import feature_cache_dir

    return Path(cache if cache is not None else feature_cache_dir()) / f"{ex.name}-{ex.config_hash()}"


def fingerprint(it: Item, modality: str) -> str:
    """What the features depend on besides the extractor: the text's sha1, or the first path's name, size
    and content hash (blake2b).

    The file *name*, not the path as written: a relative and an absolute data root (or a moved copy
    of the corpus) must hit the same cache rows; the key already says which item it is. Content, not
    mtime: a corpus copied, re-synced or unpacked again keeps its cache (hashing the 149 MB of the four speech
    corpora took 5.2 s cold, 1.0 s warm, once per process)."""
    if modality == "text":
        return hashlib.sha1((it.text or "").encode("utf-8")).hexdigest()[:16]
    if not it.paths:
        return ""
    p = it.paths[0]
    try:
        st = p.stat()
        return f"{p.name}|{st.st_size}|b2:{_content_hash(str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns)}"
    except OSError:
        return f"{p.name}|missing"


@functools.lru_cache(maxsize=65536)
def _content_hash(path: str, size: int, mtime_ns: int, ctime_ns: int) -> str:  # a rewritten file misses the memo
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=8)).hexdigest()


def _legacy_fingerprint(it: Item) -> str:
    """The fingerprint of caches written before content hashing (name|size|mtime)."""
    p = it.paths[0]
    try:
        st = p.stat()
        return f"{p.name}|{st.st_size}|{int(st.st_mtime)}"
    except OSError:
        return f"{p.name}|missing"


def _cached(it: Item, modality: str, index: dict[str, tuple[str, Path, int]], fp: str | None = None) -> bool:
    """Whether ``index`` holds a row of ``it`` with its current inputs (a legacy mtime fingerprint counts
    while the file is untouched)."""
    row = index.get(item_key(it))
    if row is None:
        return False
    fp = fp if fp is not None else fingerprint(it, modality)
    if row[0] == fp:
        return True
    return modality != "text" and bool(it.paths) and "|b2:" not in row[0] and row[0] == _legacy_fingerprint(it)


def _read_cache(folder: Path) -> dict[str, tuple[str, Path, int]]:
    """key -> (fingerprint, shard, row). Later shards win (a recomputed item supersedes its old row)."""
    index: dict[str, tuple[str, Path, int]] = {}
    if not folder.is_dir():
        return index
    for shard in sorted(folder.glob("shard-*.npz")):
        try:
            with np.load(shard) as z:
                keys, fps = z["keys"], z["fp"]
        except Exception:  # noqa: BLE001 - a damaged shard is ignored (its items are recomputed)
            continue
        for r, (k, f) in enumerate(zip(keys, fps)):
            index[str(k)] = (str(f), shard, r)
    return index


_shard_counter = 0


def _stack(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """``[n, d]`` vectors, or ``[n, T_max, d]`` zero-padded sequences and their lengths (sequence extractors)."""
    if rows[0].ndim == 1:
        return np.stack(rows), None
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    X = np.zeros((len(rows), int(lengths.max()), rows[0].shape[1]), dtype=np.float32)
    for i, r in enumerate(rows):
        X[i, : len(r)] = r
    return X, lengths


def _write_shard(folder: Path, keys: list[str], fps: list[str], X: np.ndarray, seconds: float, audio_s: float,
                 lengths: np.ndarray | None = None) -> Path:
    global _shard_counter
    _shard_counter += 1
    name = f"shard-{time.strftime('%Y%m%d%H%M%S')}-{time.time_ns() % 10**9:09d}-{os.getpid()}-{_shard_counter:05d}"
    tmp = folder / f"{name}.tmp.npz"
    extra = {} if lengths is None else {"lengths": lengths}  # sequence shards only: vector shards are unchanged
    np.savez(tmp, keys=np.array(keys), fp=np.array(fps), X=X.astype(np.float32), seconds=seconds, audio_s=audio_s,
             **extra)
    os.replace(tmp, folder / f"{name}.npz")
    return folder / f"{name}.npz"


# ------------------------------------------------------------------------------------------------ extraction

@dataclass
class ExtractReport:
    extractor: str
    folder: str
    n_total: int = 0
    n_cached: int = 0
    n_done: int = 0
    n_failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item id, message), for people
    failed_keys: list[str] = field(default_factory=list)  # their item_key (ids repeat across corpora)
    seconds: float = 0.0
    items_per_second: float = 0.0  # items computed now / wall seconds of the computing part
    audio_seconds: float = 0.0  # audio decoded now (voice only)
    rtf: float | None = None  # wall seconds / audio seconds (voice only)

    def summary(self) -> str:
        lines = [f"{self.extractor}: {self.n_total} items: {self.n_cached} cached, {self.n_done} computed, "
                 f"{self.n_failed} failed  ({self.folder})"]
        if self.n_done:
            s = f"throughput: {self.items_per_second:.2f} items/s over {self.seconds:.1f} s"
            if self.rtf is not None:
                s += f", {self.audio_seconds:.0f} s audio, RTF {self.rtf:.3f}"
            lines.append(s)
        if self.failures:
            lines.append(f"failures ({self.n_failed}):")
            for i, m in self.failures[:10]:
                lines.append(f"  {i}: {m}")
            if self.n_failed > 10:
                lines.append(f"  ... and {self.n_failed - 10} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _chunks(ex: Extractor, items: list[Item], size: int) -> list[list[Item]]:
    if ex.modality != "voice":
        return [items[i:i + size] for i in range(0, len(items), size)]
    groups: dict[Any, list[Item]] = {}
    for it in items:
        groups.setdefault(it.speaker, []).append(it)
    out: list[list[Item]] = []
    for spk in sorted(groups, key=lambda s: (s is None, str(s))):
        own = groups[spk]
        if spk is None:  # no speaker: never pack unrelated clips into one window
            out.extend([it] for it in own)
            continue
        own = speaker_order(own)
        out.extend(own[i:i + size] for i in range(0, len(own), size))
    return out


def _run_chunk(ex: Extractor, model: Any, chunk: list[Item]) -> tuple[list[Any], float, float]:
    """Results per item, seconds, audio seconds of the successful clips."""
    t = time.perf_counter()
    res = ex.compute(model, ex.config, chunk)
    dt = time.perf_counter() - t
    audio_s = 0.0
    if ex.modality == "voice":
        for it, r in zip(chunk, res):
            if not isinstance(r, BaseException):
                audio_s += _duration(it.paths[0])
    return res, dt, audio_s


def _duration(path: Path) -> float:
    try:
        import av

        with av.open(str(path)) as f:
            s = f.streams.audio[0]
            if s.duration is not None and s.time_base is not None:
                return float(s.duration * s.time_base)
            return float(f.duration or 0) / 1e6
    except Exception:  # noqa: BLE001
        return 0.0


# worker process state (one model per process, loaded by the initializer)
_W: dict[str, Any] = {}


def _worker_init(name: str, threads: int | None) -> None:
    ex = EXTRACTORS[name]
    _W["ex"], _W["model"] = ex, ex.load(ex.config, threads)


def _worker_run(chunk: list[dict[str, Any]]) -> tuple[list[Any], float, float]:
    items = [Item.from_dict(d) for d in chunk]
    res, dt, audio_s = _run_chunk(_W["ex"], _W["model"], items)
    # exceptions may not pickle: send their messages
    return [r if isinstance(r, np.ndarray) else _message(r) for r in res], dt, audio_s


def _message(e: Any) -> str:
    if isinstance(e, BaseException):
        return f"{type(e).__name__}: {e}" if not isinstance(e, InputError) else str(e)
    return str(e)


def extract(items: Sequence[Item], extractor: str, cache: Path | None = None, workers: int = 1,
            progress: bool = True, chunk_size: int = CHUNK, threads: int | None = None) -> ExtractReport:
    """Compute and cache the features of ``items`` that are not cached yet; see the module docstring.

    ``workers > 1`` runs chunks in that many processes (each loads the model once; CPU threads per model
    default to cores // workers). Items that fail are reported in ``failures`` and not cached."""
    ex = EXTRACTORS[extractor]
    items = list(items)
    folder = cache_folder(ex, cache)
    folder.mkdir(parents=True, exist_ok=True)
    cfg_file = folder / "config.json"
    if not cfg_file.exists():
        tmp = folder / "config.json.tmp"
        tmp.write_text(json.dumps(ex.identity(), indent=2, sort_keys=True))
        os.replace(tmp, cfg_file)

    t0 = time.perf_counter()
    keys = [item_key(it) for it in items]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise InputError(f"duplicate item {dup!r} in the items to extract")
    fps = {item_key(it): fingerprint(it, ex.modality) for it in items}
    index = _read_cache(folder)
    todo = [it for it in items if not _cached(it, ex.modality, index, fps[item_key(it)])]
    rep = ExtractReport(ex.name, str(folder), n_total=len(items), n_cached=len(items) - len(todo))
    if not todo:
        rep.seconds = time.perf_counter() - t0
        return rep

    chunks = _chunks(ex, todo, chunk_size)
    cores = os.cpu_count() or 1
    workers = max(1, min(workers, len(chunks)))
    if threads is None and workers > 1:
        threads = max(1, cores // workers)

    def collect(chunk: list[Item], res: list[Any], dt: float, audio_s: float) -> None:
        good = [(it, r) for it, r in zip(chunk, res) if isinstance(r, np.ndarray)]
        for it, r in zip(chunk, res):
            if not isinstance(r, np.ndarray):
                rep.failures.append((it.id, _message(r)))
                rep.failed_keys.append(item_key(it))
        if good:
            X, lengths = _stack([r for _, r in good])
            _write_shard(folder, [item_key(it) for it, _ in good], [fps[item_key(it)] for it, _ in good],
                         X, dt, audio_s, lengths)
        rep.n_done += len(good)
        rep.n_failed = len(rep.failures)
        rep.audio_seconds += audio_s

    bar = _progress(progress, ex.name, len(todo))
    t1 = time.perf_counter()
    try:
        if workers == 1:
            model = ex.load(ex.config, threads)
            t1 = time.perf_counter()
            for chunk in chunks:
                res, dt, audio_s = _run_chunk(ex, model, chunk)
                collect(chunk, res, dt, audio_s)
                bar.advance(len(chunk))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                     initargs=(ex.name, threads)) as pool:
                futs = {pool.submit(_worker_run, [it.to_dict() for it in c]): c for c in chunks}
                for fut in as_completed(futs):
                    chunk = futs[fut]
                    try:
                        res, dt, audio_s = fut.result()
                    except Exception as e:  # noqa: BLE001 - a crashed worker fails its chunk, loudly
                        res, dt, audio_s = [RuntimeError(f"worker failed: {e}")] * len(chunk), 0.0, 0.0
                    collect(chunk, res, dt, audio_s)
                    bar.advance(len(chunk))
    finally:
        bar.close()
    wall = time.perf_counter() - t1
    rep.seconds = time.perf_counter() - t0
    rep.items_per_second = rep.n_done / wall if wall > 0 else 0.0
    if ex.modality == "voice" and rep.audio_seconds > 0:
        rep.rtf = wall / rep.audio_seconds
    return rep


class _Bar:
    def __init__(self, p: Any = None, task: Any = None) -> None:
        self.p, self.task = p, task

    def advance(self, n: int) -> None:
        if self.p is not None:
            self.p.advance(self.task, n)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


def _progress(on: bool, name: str, total: int) -> _Bar:
    if not on:
        return _Bar()
    try:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
    except ImportError:
        return _Bar()
    p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 TimeRemainingColumn(), transient=False)
    p.start()
    return _Bar(p, p.add_task(f"extract {name}", total=total))


# ------------------------------------------------------------------------------------------------ reading

def load_features(items: Sequence[Item], extractor: str, cache: Path | None = None) -> tuple[list[str], np.ndarray]:
    """``(ids, X [n, d])`` of ``items`` (in order) from the cache; InputError naming how many are missing
    (not extracted, failed, or with changed inputs) and the command that extracts them."""
    ex = EXTRACTORS[extractor]
    items = list(items)
    folder = cache_folder(ex, cache)
    index = _read_cache(folder)
    missing = [it for it in items if not _cached(it, ex.modality, index)]
    if missing:
        corpora = sorted({it.corpus for it in missing})
        raise InputError(
            f"{len(missing)} of {len(items)} items have no {ex.name} features in {folder} "
            f"(e.g. {missing[0].id!r}); extract them with: emofuse extract --corpus {','.join(corpora)} "
            f"--data <data folder> --extractor {ex.name} --cache {folder.parent}  "
            f"(items that failed there are listed in its report)")
    ids, X, _ = _gather(items, index)
    return ids, X


def load_sequences(items: Sequence[Item], extractor: str,
                   cache: Path | None = None) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """``(ids, X, lengths)``: for a sequence extractor (``voice-whisper-base-seq``) ``X`` is ``[n, T_max, d]``
    zero-padded and ``lengths`` ``[n]`` the valid steps; for a vector extractor ``X`` is ``[n, d]`` and
    ``lengths`` None. Missing items raise as in :func:`load_features`."""
    ex = EXTRACTORS[extractor]
    items = list(items)
    index = _read_cache(cache_folder(ex, cache))
    if not all(_cached(it, ex.modality, index) for it in items):
        load_features(items, extractor, cache)  # raises the detailed "missing features" error
    return _gather(items, index)


def _gather(items: list[Item], index: dict[str, tuple[str, Path, int]]) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    by_shard: dict[Path, list[tuple[int, int]]] = {}
    for n, it in enumerate(items):
        _, shard, r = index[item_key(it)]
        by_shard.setdefault(shard, []).append((n, r))
    rows: list[np.ndarray | None] = [None] * len(items)
    for shard, pairs in by_shard.items():
        with np.load(shard) as z:
            S = z["X"]
            L = z["lengths"] if "lengths" in z.files else None
        for n, r in pairs:
            rows[n] = S[r] if L is None else S[r, : int(L[r])]
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32), None
    X, lengths = _stack(rows)  # type: ignore[arg-type]
    return [it.id for it in items], X.astype(np.float32), lengths
