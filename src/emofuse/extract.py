"""Resumable, cached feature extraction for manifest items (:class:`emofuse.corpora.Item`).

    from emofuse.corpora import prepare
    from emofuse.extract import extract, load_features
    m = prepare("ravdess", "/work/shared/data")
    report = extract(m, "voice-whisper-tiny.en", cache=Path(".cache/features"), workers=2)
    ids, X = load_features(m, "voice-whisper-tiny.en", Path(".cache/features"))

    python -m emofuse.extract --corpus ravdess --data /work/shared/data --extractor voice-whisper-tiny.en \
        --cache .cache/features [--workers 2] [--limit N]

Extractors are registered by name in :data:`EXTRACTORS`: ``voice-whisper-base``, ``voice-whisper-tiny.en``
(Whisper-encoder mean+std of the item's first path, :func:`emofuse.features.voice.embed_clips`, clips of one
speaker packed into shared 30 s windows as training does) and ``text-minilm-l6``, ``text-e5-small``
(``item.text``), and one sequence extractor, ``voice-whisper-base-seq`` (the same Whisper-base encoder states,
of the same speech span, averaged into 0.5 s chunks: ``[T, 512]`` per item; read with :func:`load_sequences`),
and ``face-expert-probs`` (the face expert's 7 probabilities of an image, or averaged over a video's frames
sampled at 5 fps: what the analysis feeds a network).
Each has a frozen config dataclass; its short hash (config + embedding VERSION + model
sha256) names the cache folder, so a changed model or embedding never reads stale features.

Cache layout::

    <cache>/<extractor>-<confighash>/
        config.json                  # extractor name, config, version, model sha256 (informational)
        shard-<stamp>-<pid>-<n>.npz   # keys (corpus/id), fp (input fingerprint), X [n, d], seconds, audio_s

A shard is written to a ``.tmp`` file and renamed atomically, so an interrupted run leaves only whole
shards; the shards themselves are the index (no separate index file can go stale). A re-run computes only
the items whose key is in no shard, or whose input fingerprint (text sha1, or path + size + mtime) changed.
Failed items are never cached: they are reported (id, message) and retried on the next run.

Voice packing note: a clip's embedding depends on the same-speaker clips that share its 30 s window
(as in analysis). A resumed run packs only the missing clips of a speaker together, so their embeddings
can differ slightly from those of a one-shot run; the order inside a speaker is the fixed pseudo-random
order of :func:`emofuse.training.voice.speaker_order`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .corpora.manifest import Item
from .errors import InputError

CHUNK = 64  # items per shard (voice: at most this many clips of one speaker)


# ------------------------------------------------------------------------------------------------ configs

@dataclass(frozen=True)
class VoiceConfig:
    asr_model: str  # component name, "whisper-base" or "whisper-tiny.en"
    span: str = "speech"  # "speech" or "clip" (see embed_clips)
    packed: bool = True  # clips of one speaker share 30 s windows
    window_s: float = 30.0
    gap_s: float = 0.0


@dataclass(frozen=True)
class TextConfig:
    encoder: str  # features.text registry name: "minilm-l6" or "e5-small"
    component: str  # store component whose sha256 keys the cache
    prefix: str | None = None  # e5 only: "passage" (as shipped) or "query"
    batch_size: int = 32


@dataclass(frozen=True)
class FaceConfig:
    """``face-expert-probs``: the face expert's 7 canonical probabilities, exactly what the analysis feeds a
    network: a still image's largest face (or the whole image when it looks like a tight face crop); a
    video's frames sampled at ``fps``, averaged over the frames with a face."""

    fps: float = 5.0  # as the analysis (AnalyzerOptions.fps)
    frame_max_side: int = 640  # as MediaOptions
    component: str = "fer-mini-xception"  # store component whose sha256 keys the cache


@dataclass(frozen=True)
class Extractor:
    """A registered extractor: ``load(config, threads)`` returns a model; ``compute(model, config, items)``
    returns, per item, an embedding [d] or an Exception (the item's failure)."""

    name: str
    modality: str  # "voice", "text" or "face"
    config: Any
    load: Callable[[Any, int | None], Any] = field(repr=False)
    compute: Callable[[Any, Any, Sequence[Item]], list[Any]] = field(repr=False)

    def version(self) -> str:
        if self.modality == "voice":
            from .features import voice as vf

            return f"voice-v{vf.VERSION}"
        if self.modality == "face":
            return "face-v1"
        from .features import text as tf

        return f"text-minilm-graph-{tf.MINILM_GRAPH_VERSION}" if self.config.encoder == "minilm-l6" else "text-v1"

    def model_sha256(self) -> str | None:
        from .store import COMPONENTS

        comp = self.config.asr_model if self.modality == "voice" else self.config.component
        c = COMPONENTS.get(comp)
        return c.sha256 if c else None

    def identity(self) -> dict[str, Any]:
        return {"extractor": self.name, "config": asdict(self.config), "version": self.version(),
                "model_sha256": self.model_sha256()}

    def config_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    def folder(self, cache: Path) -> Path:
        return Path(cache) / f"{self.name}-{self.config_hash()}"


# ------------------------------------------------------------------------------------------------ voice

def _load_voice(cfg: VoiceConfig, threads: int | None) -> Any:
    from .asr import load_whisper

    return load_whisper(cfg.asr_model, threads=threads)


def _embed_audio_items(items: Sequence[Item], embed: Callable[[list[np.ndarray]], Sequence[Any]]) -> list[Any]:
    """Decode each item's first path and ``embed`` the clips in one batch; an unreadable clip fails alone,
    and if the batch fails, each clip is embedded alone to find the culprit."""
    from . import media

    out: list[Any] = [None] * len(items)
    audio: list[np.ndarray] = []
    ok: list[int] = []
    for i, it in enumerate(items):
        try:
            if not it.paths:
                raise InputError(f"item {it.id!r} has no media path")
            audio.append(media.load_audio(it.paths[0]))  # the analysis decoder and validator
            ok.append(i)
        except Exception as e:  # noqa: BLE001 - recorded per item
            out[i] = e
    if not ok:
        return out
    try:
        for i, x in zip(ok, embed(audio)):
            out[i] = x
    except Exception:  # noqa: BLE001 - find the culprit: embed each clip alone
        for i, a in zip(ok, audio):
            try:
                out[i] = embed([a])[0]
            except Exception as e:  # noqa: BLE001
                out[i] = e
    return out


def _compute_voice(model: Any, cfg: VoiceConfig, items: Sequence[Item]) -> list[Any]:
    """Items are one speaker's (the chunking guarantees it)."""
    from .features import voice as vf

    return _embed_audio_items(items, lambda clips: vf.embed_clips(model, clips, window_s=cfg.window_s, gap_s=cfg.gap_s,
                                                                  packed=cfg.packed, span=cfg.span))


@dataclass(frozen=True)
class VoiceSeqConfig:
    """``voice-whisper-base-seq``: the encoder frames of the clip's speech span averaged into fixed chunks."""

    asr_model: str
    chunk_s: float = 0.5  # seconds per sequence step (25 encoder frames of 20 ms)
    packed: bool = True  # clips of one speaker share 30 s windows, as for the vector extractors
    window_s: float = 30.0
    gap_s: float = 0.0
    sequence: bool = True  # marks a sequence extractor ([T, d] per item; see load_sequences)


def embed_clip_sequences(model: Any, clips: Sequence[np.ndarray], cfg: VoiceSeqConfig) -> list[np.ndarray]:
    """Per clip ``[T, d]`` chunked encoder states of its speech span, computed exactly as the vector
    extractors see the clip (cut to speech +- the VAD pad, packed into shared windows, the speech span
    +- 0.1 s), so the sequence and the pooled vector describe the same frames."""
    from .features import voice as vf

    cut = vf.cut_to_speech(clips)
    spans = [vf.speech_span(c) for c in cut]
    out: list[np.ndarray | None] = [None] * len(cut)
    for i, enc, offset, limit in vf.encode_clips(model, cut, cfg.window_s, cfg.gap_s, cfg.packed):
        a, b = spans[i]
        out[i] = vf.chunk_frames(enc, offset + a, min(limit, offset + b), cfg.chunk_s)
    return out  # type: ignore[return-value]


def _compute_voice_seq(model: Any, cfg: VoiceSeqConfig, items: Sequence[Item]) -> list[Any]:
    return _embed_audio_items(items, lambda clips: embed_clip_sequences(model, clips, cfg))


# ------------------------------------------------------------------------------------------------ face

def _load_face(cfg: FaceConfig, threads: int | None) -> Any:
    from .features.face import FaceAnalyzer, FaceOptions

    return FaceAnalyzer(FaceOptions(threads=threads or FaceOptions().threads))


def face_probs(analyzer: Any, path: Path, cfg: FaceConfig, batch: int = 32) -> np.ndarray:
    """The face expert's mean canonical probabilities [7] for one image or video file."""
    from . import media
    from .taxonomy import EMOTIONS

    opts = media.MediaOptions(fps=cfg.fps, frame_max_side=cfg.frame_max_side)
    p = media.probe(path, opts)
    if p.kind == "image":
        obs = [analyzer.analyze_image(media.decode_image(p))]
    elif p.has_video:
        obs, frames = [], []
        for _, img in media.iter_frames(p, opts):
            frames.append(img)
            if len(frames) == batch:
                obs += analyzer.analyze_frames(frames)
                frames = []
        if frames:
            obs += analyzer.analyze_frames(frames)
    else:
        raise InputError(f"{path}: no image or video stream; face-expert-probs needs a face image or a video")
    out = analyzer.summarize(obs)
    if out is None:
        raise InputError(f"{path}: no face found in {len(obs)} sampled frame(s); the item needs a visible, roughly "
                         "frontal face (or a tight face crop)")
    return np.array([out.probs[e] for e in EMOTIONS], dtype=np.float32)


def _compute_face(model: Any, cfg: FaceConfig, items: Sequence[Item]) -> list[Any]:
    out: list[Any] = []
    for it in items:
        try:
            if not it.paths:
                raise InputError(f"item {it.id!r} has no media path")
            out.append(face_probs(model, it.paths[0], cfg))
        except Exception as e:  # noqa: BLE001 - recorded per item
            out.append(e)
    return out


# ------------------------------------------------------------------------------------------------ text

def _load_text(cfg: TextConfig, threads: int | None) -> Any:
    from .features.text import get_encoder

    kw: dict[str, Any] = {"threads": threads} if threads else {}
    if cfg.prefix is not None:
        kw["prefix"] = cfg.prefix
    return get_encoder(cfg.encoder, **kw)


def _compute_text(model: Any, cfg: TextConfig, items: Sequence[Item]) -> list[Any]:
    out: list[Any] = [None] * len(items)
    ok: list[int] = []
    for i, it in enumerate(items):
        if it.text is None or not str(it.text).strip():
            out[i] = InputError(f"item {it.id!r} has empty text")
        else:
            ok.append(i)
    if not ok:
        return out
    try:
        X = model.encode([str(items[i].text) for i in ok], batch_size=cfg.batch_size)
        for i, x in zip(ok, X):
            out[i] = x
    except Exception:  # noqa: BLE001 - find the culprit
        for i in ok:
            try:
                out[i] = model.encode([str(items[i].text)], batch_size=1)[0]
            except Exception as e:  # noqa: BLE001
                out[i] = e
    return out


# ------------------------------------------------------------------------------------------------ registry

def _voice(name: str, asr: str) -> Extractor:
    return Extractor(name, "voice", VoiceConfig(asr), _load_voice, _compute_voice)


def _text(name: str, enc: str, comp: str, prefix: str | None = None) -> Extractor:
    return Extractor(name, "text", TextConfig(enc, comp, prefix), _load_text, _compute_text)


EXTRACTORS: dict[str, Extractor] = {e.name: e for e in (
    _voice("voice-whisper-base", "whisper-base"),
    _voice("voice-whisper-tiny.en", "whisper-tiny.en"),
    _text("text-minilm-l6", "minilm-l6", "minilm-l6"),
    _text("text-e5-small", "e5-small", "e5-small-q4", "passage"),
    Extractor("voice-whisper-base-seq", "voice", VoiceSeqConfig("whisper-base"), _load_voice, _compute_voice_seq),
    Extractor("face-expert-probs", "face", FaceConfig(), _load_face, _compute_face),
)}


def get_extractor(name: str) -> Extractor:
    if name not in EXTRACTORS:
        raise InputError(f"unknown extractor {name!r}; known: {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name]


# ------------------------------------------------------------------------------------------------ cache

def default_cache() -> Path:
    """``$EMOFUSE_FEATURE_CACHE``, else ``.cache/features`` under the current directory (as training)."""
    return Path(os.environ.get("EMOFUSE_FEATURE_CACHE", Path.cwd() / ".cache" / "features"))


def item_key(it: Item) -> str:
    return f"{it.corpus}/{it.id}"


def fingerprint(it: Item, modality: str) -> str:
    """What the features depend on besides the extractor: the text, or the first path's name/size/mtime.

    The file *name*, not the path as written: a relative and an absolute data root (or a moved copy
    of the corpus) must hit the same cache rows; the key already says which item it is."""
    if modality == "text":
        return hashlib.sha1((it.text or "").encode("utf-8")).hexdigest()[:16]
    if not it.paths:
        return ""
    p = it.paths[0]
    try:
        st = p.stat()
        return f"{p.name}|{st.st_size}|{int(st.st_mtime)}"
    except OSError:
        return f"{p.name}|missing"


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
    failures: list[tuple[str, str]] = field(default_factory=list)
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
        rng = np.random.default_rng(zlib.crc32(str(spk).encode()))  # as training.voice.speaker_order
        own = [own[i] for i in rng.permutation(len(own))]
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
    ex = get_extractor(name)
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
    ex = get_extractor(extractor)
    items = list(items)
    cache = Path(cache) if cache is not None else default_cache()
    folder = ex.folder(cache)
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
    todo = [it for it in items if not (item_key(it) in index and index[item_key(it)][0] == fps[item_key(it)])]
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
    ex = get_extractor(extractor)
    items = list(items)
    cache = Path(cache) if cache is not None else default_cache()
    folder = ex.folder(cache)
    index = _read_cache(folder)
    missing = [it for it in items
               if item_key(it) not in index or index[item_key(it)][0] != fingerprint(it, ex.modality)]
    if missing:
        corpora = sorted({it.corpus for it in missing})
        raise InputError(
            f"{len(missing)} of {len(items)} items have no {ex.name} features in {folder} "
            f"(e.g. {missing[0].id!r}); extract them with: emofuse extract --corpus {','.join(corpora)} "
            f"--data <data folder> --extractor {ex.name} --cache {cache}  "
            f"(or python -m emofuse.extract ...; items that failed there are listed in its report)")
    ids, X, _ = _gather(items, index)
    return ids, X


def load_sequences(items: Sequence[Item], extractor: str,
                   cache: Path | None = None) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """``(ids, X, lengths)``: for a sequence extractor (``voice-whisper-base-seq``) ``X`` is ``[n, T_max, d]``
    zero-padded and ``lengths`` ``[n]`` the valid steps; for a vector extractor ``X`` is ``[n, d]`` and
    ``lengths`` None. Missing items raise as in :func:`load_features`."""
    ex = get_extractor(extractor)
    items = list(items)
    cache = Path(cache) if cache is not None else default_cache()
    index = _read_cache(ex.folder(cache))
    if any(item_key(it) not in index or index[item_key(it)][0] != fingerprint(it, ex.modality) for it in items):
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


# ------------------------------------------------------------------------------------------------ CLI

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emofuse extract", description="Extract and cache features of a corpus.")
    ap.add_argument("--corpus", required=True, help="corpus name (emofuse.corpora.CORPORA)")
    ap.add_argument("--data", type=Path, required=True, help="corpus folder or the shared data folder")
    ap.add_argument("--extractor", required=True, choices=sorted(EXTRACTORS))
    ap.add_argument("--cache", type=Path, default=None, help="feature cache folder (default .cache/features)")
    ap.add_argument("--workers", type=int, default=1, help="processes (each loads the model once)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N items (smoke test)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; returns 0 when every item has features, 1 when some failed, 2 on an input error."""
    from .corpora import prepare

    a = build_parser().parse_args(argv)
    try:
        m = prepare(a.corpus, a.data)
        for w in m.warnings:
            print(f"warning: {w}", file=sys.stderr)
        items = list(m)[: a.limit] if a.limit else list(m)
        rep = extract(items, a.extractor, a.cache, workers=a.workers, progress=not a.no_progress)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rep.to_dict(), indent=2) if a.json else rep.summary())
    return 1 if rep.n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
