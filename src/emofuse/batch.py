"""emofuse batch: a collection of recordings analysed across processes (or a Ray cluster), written
incrementally, resumable after a crash.

The run's folder (``--out``) holds

* ``batch.json`` — the header: what the rows were computed with (the analysis options that change results,
  emofuse's version, a trained checkpoint's sha256), the output format and the metadata columns;
* ``inputs.jsonl`` — the ledger: one line per input's fate (``ok``, ``failed``, ``duplicate``, ``invalid``,
  ``missing``) with its key, origin (manifest row), metadata, duration, attempts and error;
* ``segments.jsonl`` or ``segments/part-*.parquet`` — one row per segment, the CSV columns of
  ``emofuse analyze --format csv`` plus ``key`` and the manifest's metadata columns. A failed input is one
  row with label ``error`` and the message in ``text``; an input without segments one row with an empty label.

An input's key is a hash of its content and of the options: a re-run skips the keys the ledger records as
``ok`` or ``failed``, so a killed run resumes where it stopped, a renamed file is not redone, an edited one is.
Segment rows are written and synced before their ledger line, so after a kill the rows of inputs without a
ledger line are dropped on resume (JSON Lines: truncated at the last recorded offset; Parquet: parts the ledger
does not name are deleted, and the last part keeps only the inputs its surviving lines name), and no input is
recorded twice.

Engines: ``local`` runs ``workers`` processes, each holding one :class:`~emofuse.pipeline.Analyzer` (models
loaded once per process) and receiving chunks of inputs that share ASR windows; a worker that dies (killed,
out of memory) costs the inputs it held: each is retried once, alone, then recorded as failed. ``ray`` runs
the same per-chunk function in an actor pool of Ray Data (``emofuse[cluster]``); results stream back to this
process, which writes them with the same writer.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EmofuseError, InputError, MissingComponentError
from .result import CSV_COLUMNS
from .store import sha256_file

FORMAT_TAG = "emofuse-batch/1"
FORMATS = ("jsonl", "parquet")
ENGINES = ("local", "ray")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
PATH_COLUMN = "path"
# Options that change speed, not results: left out of the key, so that a run resumed with other worker
# settings still skips what is done.
_SPEED_ONLY = ("threads", "asr_streams", "asr_streams_beside_faces")
_INT_COLUMNS = ("segment", "text_reliable")
_FLOAT_COLUMNS = ("start", "end", "text_quality", "confidence", "valence", "arousal",
                  *(c for c in CSV_COLUMNS if c.startswith("p_")))
ROW_COLUMNS = ("key", *CSV_COLUMNS)
DONE = ("ok", "failed")  # ledger statuses a re-run skips


@dataclass(frozen=True)
class BatchOptions:
    out: Path
    format: str = "jsonl"  # jsonl | parquet
    engine: str = "local"  # local | ray
    workers: int = 2  # analysis processes (local) or actors (ray), each holding one Analyzer
    threads: int | None = None  # CPU threads per worker; None = the cores divided among the workers
    address: str | None = None  # ray: a running cluster's address; None = a local cluster on this machine
    chunk: int = 8  # inputs handed to a worker at once (short clips among them share ASR windows)
    retries: int = 1  # times an input whose worker died is retried (alone) before it is recorded as failed
    part_rows: int = 2000  # parquet: segment rows per part file (a part is written at least every part_seconds)
    part_seconds: float = 60.0
    retry_failed: bool = False  # analyse again the inputs a previous run recorded as failed (their rows replaced)
    # local engine: a worker that finishes no input for this many seconds is killed, as if it had died (its
    # inputs retried alone, then recorded as failed); None = wait for ever. Must exceed the longest input's time.
    timeout: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.format not in FORMATS:
            raise InputError(f"--format {self.format!r}: choose {' or '.join(FORMATS)}")
        if self.engine not in ENGINES:
            raise InputError(f"--engine {self.engine!r}: choose {' or '.join(ENGINES)}")
        if self.address is not None and self.engine != "ray":
            raise InputError("--address names a Ray cluster: add --engine ray, or leave --address out")
        for name in ("workers", "chunk", "part_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"--{name.replace('_', '-')} must be an integer >= 1, not {v!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise InputError(f"--threads must be an integer >= 1, not {self.threads!r}")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                                         or not self.timeout > 0):
            raise InputError(f"--timeout must be a number of seconds > 0, not {self.timeout!r}")
        if self.timeout is not None and self.engine == "ray":
            raise InputError("--timeout applies to the local engine; with --engine ray leave it out")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InputError(f"--retries must be an integer >= 0, not {self.retries!r}")
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"--out {self.out} is a file; name a folder (it is created, or resumed if it holds a run)")

    def worker_threads(self) -> int:
        return self.threads or max(1, _cores() // self.workers)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------------ inputs

@dataclass(frozen=True)
class Job:
    """One input to analyse: its path, where it was named, and the manifest's other columns."""

    path: str
    origin: str  # "manifest.csv:12", or the folder / pattern / path it came from
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A manifest row or pattern that names nothing to analyse, with the reason."""

    origin: str
    input: str
    status: str  # invalid | missing
    reason: str


def collect(specs: Sequence[str | Path]) -> tuple[list[Job], list[Rejected], list[str]]:
    """Jobs from folders, glob patterns, files and manifests (``.csv`` / ``.jsonl`` with a ``path`` column and
    any other columns as metadata; relative paths are read from the manifest's folder). Returns the jobs,
    the rows that name nothing analysable, and the metadata column names. A manifest without a ``path``
    column, or one that cannot be read at all, raises InputError before anything runs."""
    from .media import expand_inputs

    jobs: list[Job] = []
    rejected: list[Rejected] = []
    meta_cols: list[str] = []
    for spec in map(str, specs):
        p = Path(spec)
        if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            js, rj, cols = _read_manifest(p)
            jobs += js
            rejected += rj
            meta_cols += [c for c in cols if c not in meta_cols]
        elif p.is_dir():
            jobs += [Job(str(f), spec) for f in expand_inputs([p])]
        elif any(ch in spec for ch in "*?["):
            found = sorted(f for f in glob.glob(spec, recursive=True) if Path(f).is_file())
            if not found:
                rejected.append(Rejected(spec, spec, "missing", f"no file matches the pattern {spec!r}"))
            jobs += [Job(f, spec) for f in found]
        else:
            jobs.append(Job(spec, spec))
    clash = sorted(set(meta_cols) & set(ROW_COLUMNS))
    if clash:
        raise InputError(f"manifest column(s) {', '.join(clash)} clash with the output's own columns; rename "
                         f"them (e.g. meta_{clash[0]})")
    return jobs, rejected, meta_cols


def _read_manifest(path: Path) -> tuple[list[Job], list[Rejected], list[str]]:
    rows: list[tuple[int, dict[str, Any] | None, str]] = []  # (line, row or None, why unreadable)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: the BOM spreadsheets write
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(f)
                cols = list(reader.fieldnames or [])
                if PATH_COLUMN not in cols:
                    raise InputError(f"manifest {path} has no {PATH_COLUMN!r} column (its columns: "
                                     f"{', '.join(cols) or 'none'}); its header must name the media files' column "
                                     f"{PATH_COLUMN!r}")
                for row in reader:
                    line = reader.line_num
                    if None in row or any(v is None for v in row.values()):
                        n = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
                        rows.append((line, None, f"has {n} fields, the header {len(cols)}"))
                    else:
                        rows.append((line, row, ""))
            else:
                cols = []
                for line, text in enumerate(f, 1):
                    if not text.strip():
                        continue
                    try:
                        row = json.loads(text)
                    except json.JSONDecodeError as e:
                        rows.append((line, None, f"is not JSON ({e.msg})"))
                        continue
                    if not isinstance(row, dict):
                        rows.append((line, None, "is not a JSON object"))
                        continue
                    rows.append((line, row, ""))
                    cols += [c for c in row if c not in cols]
                if rows and all(r is None for _, r, _ in rows):
                    raise InputError(f"manifest {path}: no line is a JSON object (line {rows[0][0]} {rows[0][2]}); "
                                     f'each line must be an object such as {{"{PATH_COLUMN}": "clip.mp4"}}')
                if rows and not any(r is not None and PATH_COLUMN in r for _, r, _ in rows):
                    raise InputError(f"manifest {path}: no row has a {PATH_COLUMN!r} field; each line must be an "
                                     f'object such as {{"{PATH_COLUMN}": "clip.mp4", "speaker": "s1"}}')
    except UnicodeDecodeError as e:
        raise InputError(f"manifest {path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise InputError(f"manifest {path} cannot be read ({e.strerror}); check the path and its permissions") from None
    jobs, rejected = [], []
    for line, row, why in rows:
        origin = f"{path}:{line}"
        if row is None:
            rejected.append(Rejected(origin, "", "invalid", f"{origin}: row {why}; fix or remove it"))
            continue
        v = row.get(PATH_COLUMN)
        if not isinstance(v, str) or not v.strip():
            rejected.append(Rejected(origin, "", "invalid", f"{origin}: row has no {PATH_COLUMN!r}; give each row "
                                                            "the media file's path"))
            continue
        p = Path(v.strip())
        p = p if p.is_absolute() else path.parent / p
        meta = {k: "" if x is None else (x if isinstance(x, str) else json.dumps(x, ensure_ascii=False))
                for k, x in row.items() if k != PATH_COLUMN}
        jobs.append(Job(str(p), origin, meta))
    return jobs, rejected, [c for c in cols if c != PATH_COLUMN]


# ------------------------------------------------------------------------------------------------ keys

def options_fingerprint(opts: Any) -> dict[str, Any]:
    """What an analysis's results depend on: its options (not the speed-only ones), emofuse's version and
    a trained checkpoint's content."""
    from . import __version__

    from .result import MODALITIES

    d = {k: v for k, v in dataclasses.asdict(opts).items() if k not in _SPEED_ONLY}
    d["modalities"] = [m for m in MODALITIES if m in d["modalities"]]  # "text,voice" is "voice,text"
    if d.get("fusion") is None and not opts.checkpoint:
        d["fusion"] = "poe"  # what the analysis uses when none is named
    if d.get("asr_window") == 30.0:
        del d["asr_window"]  # Whisper's own window: the keys of runs made before the option existed still match
    if opts.checkpoint:
        d["checkpoint"] = sha256_file(Path(opts.checkpoint))
    d["emofuse"] = __version__
    return d


def _digest(obj: Any) -> str:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True).encode(), digest_size=8).hexdigest()


# ------------------------------------------------------------------------------------------------ results

def analyze_chunk(analyzer: Any, jobs: Sequence[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """The per-chunk function both engines run: ``(key, path)`` pairs in, one record per input out (its
    status, error, duration and segment rows). A bad input is its own failed record."""
    from .result import AnalysisError, csv_rows

    t = time.perf_counter()
    for (key, _), r in zip(jobs, analyzer.iter_analyze([p for _, p in jobs])):
        now = time.perf_counter()
        failed = isinstance(r, AnalysisError)
        yield {"key": key, "status": "failed" if failed else "ok", "error": r.error if failed else None,
               "duration": None if failed else round(r.duration, 3), "seconds": round(now - t, 3),
               "rows": [_typed(row) for row in csv_rows(r)]}
        t = now


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row with every column present and typed (None where empty), so that JSON Lines and Parquet
    agree."""
    out: dict[str, Any] = {}
    for c in CSV_COLUMNS:
        v = row.get(c)
        if v == "" and c not in ("text", "label"):
            v = None
        if v is not None and c in _INT_COLUMNS:
            v = int(v)
        elif v is not None and c in _FLOAT_COLUMNS:
            v = float(v)
        out[c] = v
    return out


@dataclass
class Summary:
    done: int = 0  # analysed now
    failed: int = 0  # of those, failed
    skipped: int = 0  # already in the ledger
    skipped_failed: int = 0  # of those, recorded as failed
    rejected: int = 0  # invalid manifest rows, missing files
    duplicates: int = 0  # inputs with the same content as an earlier one (analysed once)
    audio_seconds: float = 0.0
    wall: float = 0.0
    startup: float | None = None  # seconds until the first input's fate was written (models loading, Ray starting)
    out: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["audio_hours_per_hour"] = round(self.audio_seconds / self.wall, 2) if self.wall > 0 else None
        return d


class Writer:
    """The only writer of a run's folder: segment rows first, then their ledger lines (see the module doc)."""

    def __init__(self, opts: BatchOptions, header: dict[str, Any], meta_cols: list[str]) -> None:
        self.opts, self.dir = opts, opts.out
        self.dir.mkdir(parents=True, exist_ok=True)
        head_path = self.dir / "batch.json"
        if head_path.exists():
            old = json.loads(head_path.read_text())
            if old.get("format") != FORMAT_TAG:
                raise InputError(f"{self.dir} holds no emofuse batch run ({head_path} is not {FORMAT_TAG}); use another --out")
            if old.get("output") != opts.format:
                raise InputError(f"{self.dir} holds a --format {old.get('output')} run; resume it with that format or use "
                                 "another --out")
            if old.get("options") != header["options"]:
                diff = sorted(k for k in set(old.get("options", {})) | set(header["options"])
                              if old.get("options", {}).get(k) != header["options"].get(k))
                raise InputError(f"{self.dir} holds a run made with other analysis options (differing: {', '.join(diff)}); "
                                 "resume it with the same options, or use another --out")
            new = [c for c in meta_cols if c not in old.get("meta_columns", [])]
            if new and opts.format == "parquet":
                raise InputError(f"{self.dir}: its Parquet parts have no column(s) {', '.join(new)}; resume with the "
                                 "same manifest columns, or use another --out")
            self.meta_cols = list(old.get("meta_columns", [])) + new
        else:
            self.meta_cols = list(meta_cols)
        header = header | {"meta_columns": self.meta_cols}
        tmp = head_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(header, indent=1, ensure_ascii=False))
        tmp.replace(head_path)
        self.ledger_path = self.dir / "inputs.jsonl"
        self.entries = self._recover()
        self.ledger = open(self.ledger_path, "a", encoding="utf-8")
        self.pending: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []  # parquet: not yet in a part
        self.pending_rows, self.last_part = 0, time.monotonic()
        if opts.format == "jsonl":
            self.rows = open(self.dir / "segments.jsonl", "ab")
        else:
            (self.dir / "segments").mkdir(exist_ok=True)
            self.n_parts = 1 + max((int(p.stem.split("-")[1]) for p in (self.dir / "segments").glob("part-*.parquet")),
                                   default=-1)
        if (self.dir / "retry.json").exists():  # a retry a kill interrupted
            self._finish_retry(set(json.loads((self.dir / "retry.json").read_text())))

    def _recover(self) -> list[dict[str, Any]]:
        """The ledger's entries; a torn last line is cut off, and rows no ledger line covers are dropped."""
        entries: list[dict[str, Any]] = []
        good = 0
        if self.ledger_path.exists():
            data = self.ledger_path.read_bytes()
            for line in data.splitlines(keepends=True):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("no end of line")
                    entries.append(json.loads(line))
                except ValueError:
                    break  # a line torn by a kill (even one cut just before its newline): nothing after it counts
                good += len(line)
            if good < len(data):
                with open(self.ledger_path, "r+b") as f:
                    f.truncate(good)
        if self.opts.format == "jsonl":
            seg = self.dir / "segments.jsonl"
            # rows are only appended, and rewritten only by retry_failed, which records the new end: the last
            # recorded end is where the committed rows stop
            end = next((e["end"] for e in reversed(entries) if "end" in e), 0)
            if seg.exists() and seg.stat().st_size > end:
                with open(seg, "r+b") as f:
                    f.truncate(end)
        else:
            named = {e["part"] for e in entries if e.get("part")}
            for p in (self.dir / "segments").glob("part-*"):
                if p.name not in named:
                    p.unlink()
            if named:  # a kill inside the last part's ledger write: keep only the inputs its lines name
                last = max(named)
                keys = {e["key"] for e in entries if e.get("part") == last}
                _filter_part(self.dir / "segments" / last, lambda k: k in keys)
        return entries

    def latest(self) -> dict[str, str]:
        """Each input key's latest status: a later entry wins, and a retry line forgets its keys."""
        out: dict[str, str] = {}
        for e in self.entries:
            if e.get("status") == "retry":
                for k in e.get("keys", ()):
                    out.pop(k, None)
            elif e.get("key") and e.get("status") in DONE:
                out[e["key"]] = e["status"]
        return out

    def done_keys(self) -> set[str]:
        return set(self.latest())

    def retry_failed(self, keys: set[str]) -> None:
        """Forget these inputs (recorded as failed), so that this run analyses them again: their rows are
        removed and a ledger line records the retry. An intent file written first makes it survive a kill:
        the next run finishes it before anything else (nothing new is written for these keys before then)."""
        if keys:
            _write_synced(self.dir / "retry.json", json.dumps(sorted(keys)).encode())
            self._finish_retry(keys)

    def _finish_retry(self, keys: set[str]) -> None:
        if self.opts.format == "jsonl":
            seg = self.dir / "segments.jsonl"
            self.rows.close()
            kept = [line for line in seg.read_bytes().splitlines(keepends=True) if json.loads(line).get("key") not in keys]
            tmp = seg.with_suffix(".tmp")
            _write_synced(tmp, b"".join(kept))
            os.replace(tmp, seg)
            self.rows = open(seg, "ab")
            self._ledger([{"status": "retry", "keys": sorted(keys), "end": self.rows.tell()}])
        else:
            for part in sorted((self.dir / "segments").glob("part-*.parquet")):
                _filter_part(part, lambda k: k not in keys)
            self._ledger([{"status": "retry", "keys": sorted(keys)}])
        (self.dir / "retry.json").unlink()

    def known_hashes(self) -> dict[tuple[str, int, int], str]:
        """(path, size, mtime_ns) -> content hash from the ledger: an unchanged file is not read again."""
        return {(e["input"], e["size"], e["mtime_ns"]): e["content"] for e in self.entries
                if e.get("content") and "size" in e}

    def commit(self, entry: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        meta = entry.get("meta") or {}
        rows = [{"key": entry.get("key")} | r | {c: meta.get(c) for c in self.meta_cols} for r in rows]
        if self.opts.format == "jsonl":
            if rows:
                self.rows.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
                self.rows.flush()
                os.fsync(self.rows.fileno())  # on disk before the ledger line that names them
            self._ledger([entry | {"end": self.rows.tell()}])
            return
        if not rows:
            self._ledger([entry])
            return
        self.pending.append((entry, rows))
        self.pending_rows += len(rows)
        if self.pending_rows >= self.opts.part_rows or time.monotonic() - self.last_part >= self.opts.part_seconds:
            self.flush()

    def flush(self) -> None:
        if self.opts.format != "parquet" or not self.pending:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"part-{self.n_parts:05d}.parquet"
        rows = [r for _, rs in self.pending for r in rs]
        table = pa.Table.from_pylist(rows, schema=parquet_schema(self.meta_cols))
        tmp = self.dir / "segments" / f"{name}.tmp"
        pq.write_table(table, tmp)
        _fsync(tmp)
        os.replace(tmp, tmp.with_suffix(""))
        self._ledger([e | {"part": name} for e, _ in self.pending])
        self.n_parts += 1
        self.pending, self.pending_rows, self.last_part = [], 0, time.monotonic()

    def _ledger(self, entries: list[dict[str, Any]]) -> None:
        self.ledger.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
        self.ledger.flush()
        os.fsync(self.ledger.fileno())
        self.entries += entries

    def close(self) -> None:
        self.flush()
        self.ledger.close()
        if self.opts.format == "jsonl":
            self.rows.close()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _filter_part(part: Path, keep: Callable[[str], bool]) -> None:
    """Rewrite a Parquet part without the rows whose key ``keep`` rejects (atomically; untouched if none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(part)
    mask = [bool(keep(k)) for k in table.column("key").to_pylist()]
    if all(mask):
        return
    tmp = part.with_name(part.name + ".tmp")
    pq.write_table(table.filter(pa.array(mask)), tmp)
    _fsync(tmp)
    os.replace(tmp, part)


def parquet_schema(meta_cols: Sequence[str]) -> Any:
    import pyarrow as pa

    def kind(c: str) -> Any:
        return pa.int64() if c in _INT_COLUMNS else pa.float64() if c in _FLOAT_COLUMNS else pa.string()

    return pa.schema([(c, kind(c)) for c in ROW_COLUMNS] + [(c, pa.string()) for c in meta_cols])


def read_rows(out: str | Path) -> list[dict[str, Any]]:
    """A run's segment rows (either format), in the order they were written."""
    out = Path(out)
    if (out / "segments.jsonl").exists():
        with open(out / "segments.jsonl", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    import pyarrow.parquet as pq

    parts = sorted((out / "segments").glob("part-*.parquet"))
    return [r for p in parts for r in pq.read_table(p).to_pylist()]


# ------------------------------------------------------------------------------------------------ the run

OnProgress = Callable[[dict[str, Any]], None]


def run(specs: Sequence[str | Path], analyzer_options: Any, opts: BatchOptions,
        on_progress: OnProgress | None = None, on_start: Callable[[int, int], None] | None = None) -> Summary:
    """Analyse every input the specs name into ``opts.out``; resumes a run already there.

    ``on_start(total, already_done)`` is called once the inputs are known; ``on_progress(entry)`` after each
    input's fate is written. Raises InputError (before any model loads) for a bad option, a manifest that
    cannot be read, or an ``--out`` that holds a run with other options."""
    t0 = time.perf_counter()
    if opts.engine == "ray":
        _need_ray()
        with _ray_session(opts):  # its start-up counts in the run's wall time
            return _run(specs, analyzer_options, opts, on_progress, on_start, t0)
    return _run(specs, analyzer_options, opts, on_progress, on_start, t0)


def _run(specs: Sequence[str | Path], analyzer_options: Any, opts: BatchOptions, on_progress: OnProgress | None,
         on_start: Callable[[int, int], None] | None, t0: float) -> Summary:
    jobs, rejected, meta_cols = collect(specs)
    if not jobs and not rejected:
        raise InputError("nothing to analyse: give folders, files, glob patterns or manifests (.csv / .jsonl)")
    fp = options_fingerprint(analyzer_options)
    header = {"format": FORMAT_TAG, "output": opts.format, "options": fp, "options_key": _digest(fp)}
    w = Writer(opts, header, meta_cols)
    summary = Summary(out=str(opts.out))
    try:
        todo, again = _plan(jobs, rejected, w, header["options_key"], summary, on_progress, opts.retry_failed)
        w.retry_failed(again)  # --retry-failed: this run's failed inputs, their old rows removed first
        if on_start is not None:
            on_start(len(todo) + summary.skipped + summary.rejected + summary.duplicates,
                     summary.skipped + summary.rejected + summary.duplicates)

        def record(job: tuple[Job, str, dict[str, Any]], rec: dict[str, Any], attempts: int) -> None:
            j, key, info = job
            entry = {"key": key, "input": j.path, "origin": j.origin, "status": rec["status"], "error": rec["error"],
                     "duration": rec["duration"], "seconds": rec["seconds"], "attempts": attempts,
                     "segments": sum(1 for r in rec["rows"] if r.get("segment") is not None)} | info
            if j.meta:
                entry["meta"] = j.meta
            w.commit(entry, rec["rows"])
            summary.done += 1
            if summary.startup is None:
                summary.startup = time.perf_counter() - t0
            summary.failed += rec["status"] == "failed"
            summary.audio_seconds += rec["duration"] or 0.0
            if on_progress is not None:
                on_progress(entry)

        if todo:
            engine = _run_local if opts.engine == "local" else _run_ray
            engine(todo, analyzer_options, opts, record)
    finally:
        w.close()
    summary.wall = time.perf_counter() - t0
    return summary


def _plan(jobs: list[Job], rejected: list[Rejected], w: Writer, options_key: str, summary: Summary,
          on_progress: OnProgress | None, retry: bool = False) -> tuple[list[tuple[Job, str, dict[str, Any]]], set[str]]:
    """Keys for the jobs; duplicates, missing files and rows already done recorded or skipped. With ``retry``,
    the jobs recorded as failed are planned again; their keys are returned beside the plan."""
    done, known = w.done_keys(), w.known_hashes()
    failed_before = {k for k, st in w.latest().items() if st == "failed"}
    again: set[str] = set()
    if retry:
        done -= failed_before
    recorded = {(e.get("origin"), e.get("input"), e.get("status")) for e in w.entries}

    def reject(entry: dict[str, Any]) -> None:
        if entry["status"] == "duplicate":
            summary.duplicates += 1
        else:
            summary.rejected += 1
        if (entry["origin"], entry["input"], entry["status"]) not in recorded:  # a resumed run does not record it again
            w.commit(entry, [])
        if on_progress is not None:
            on_progress(entry)

    for r in rejected:
        reject({"key": None, "input": r.input, "origin": r.origin, "status": r.status, "error": r.reason})
    todo: list[tuple[Job, str, dict[str, Any]]] = []
    first: dict[str, str] = {}
    for j in jobs:
        try:
            st = os.stat(j.path)
            content = known.get((j.path, st.st_size, st.st_mtime_ns)) or sha256_file(Path(j.path))
        except OSError as e:
            # not "done": a re-run looks again, in case the file has been put back
            reject({"key": None, "input": j.path, "origin": j.origin, "status": "missing",
                    "error": f"{j.path}: {e.strerror or 'cannot be read'}; check the path (a manifest's relative "
                             "paths are read from its folder)"})
            continue
        key = hashlib.blake2b(f"{content}|{options_key}".encode(), digest_size=12).hexdigest()
        if key in first:
            reject({"key": key, "input": j.path, "origin": j.origin, "status": "duplicate",
                    "error": f"same content as {first[key]}: analysed once, under that name"})
            continue
        first[key] = j.path
        if key in done:
            summary.skipped += 1
            summary.skipped_failed += key in failed_before
            continue
        if key in failed_before:
            again.add(key)
        todo.append((j, key, {"content": content, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return todo, again


# ------------------------------------------------------------------------------------------------ local engine

def _worker_main(conn: Any, options: dict[str, Any], threads: int) -> None:
    """A local worker: one Analyzer, chunks in, records out, until told to stop."""
    try:
        analyzer = _make_analyzer(options, threads)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which stops the run with it
        conn.send(("fatal", f"{type(e).__name__}: {e}", None))
        return
    try:
        conn.send(("ready", None, None))
        while (msg := conn.recv()) is not None:
            cid, jobs = msg
            _maybe_crash(jobs)
            for rec in analyze_chunk(analyzer, jobs):
                conn.send(("result", cid, rec))
            conn.send(("done", cid, None))
    except (EOFError, BrokenPipeError):
        pass  # the run was stopped (its process killed): nothing is left to report to
    finally:
        analyzer.close()


def _maybe_crash(jobs: Sequence[tuple[str, str]]) -> None:
    """Fault injection for the tests: a worker handed the file named $EMOFUSE_BATCH_CRASH_ON kills itself."""
    crash = os.environ.get("EMOFUSE_BATCH_CRASH_ON")
    if crash and any(Path(p).name == crash for _, p in jobs):
        os.kill(os.getpid(), 9)
    hang = os.environ.get("EMOFUSE_BATCH_HANG_ON")  # ... and one handed this name never answers
    if hang and any(Path(p).name == hang for _, p in jobs):
        time.sleep(3600)


def _make_analyzer(options: dict[str, Any], threads: int) -> Any:
    """A worker's Analyzer (both engines), on ``threads`` CPU threads."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from .pipeline import Analyzer, AnalyzerOptions

    opts = dict(options, threads=threads)
    if threads == 1:  # one core: one decoding stream (a second would only wait for it)
        opts |= {"asr_streams": 1, "asr_streams_beside_faces": 1}
    return Analyzer(AnalyzerOptions(**opts))


def _analyzer_dict(analyzer_options: Any) -> dict[str, Any]:
    d = dataclasses.asdict(analyzer_options)
    d["modalities"] = tuple(d["modalities"])
    return d


def plan_chunks(todo: list[Any], opts: BatchOptions) -> list[list[Any]]:
    """The chunks both engines hand out: ``opts.chunk`` inputs, fewer when there are too few to keep every
    worker busy."""
    size = min(opts.chunk, max(1, -(-len(todo) // opts.workers)))
    return [todo[i:i + size] for i in range(0, len(todo), size)]


def _run_local(todo: list[tuple[Job, str, dict[str, Any]]], analyzer_options: Any, opts: BatchOptions,
               record: Callable[..., None]) -> None:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")  # CTranslate2, ONNX Runtime and LiteRT are not fork-safe
    threads = opts.worker_threads()
    options = _analyzer_dict(analyzer_options)
    by_key = {job[1]: job for job in todo}
    attempts = {key: 0 for key in by_key}
    # (chunk of keys, alone): a chunk is retried key by key after its worker died
    queue: list[list[str]] = [[k for _, k, _ in c] for c in plan_chunks(todo, opts)]
    workers: dict[Any, dict[str, Any]] = {}  # conn -> {proc, chunk, left, ready}

    def spawn() -> None:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, options, threads), daemon=True)
        proc.start()
        child.close()
        workers[parent] = {"proc": proc, "chunk": None, "left": set(), "ready": False, "since": time.monotonic()}

    def assign(conn: Any) -> None:
        st = workers[conn]
        if not queue:
            return
        chunk = queue.pop(0)
        for k in chunk:
            attempts[k] += 1
        st["chunk"], st["left"], st["since"] = chunk, set(chunk), time.monotonic()
        try:
            conn.send((id(chunk), [(k, by_key[k][0].path) for k in chunk]))
        except OSError:  # it died since its last message: its chunk is retried like any dead worker's
            died(conn)

    def died(conn: Any, why: str | None = None) -> None:
        st = workers.pop(conn)
        st["proc"].join(timeout=1)
        code = st["proc"].exitcode
        if not st["ready"]:
            if code is not None and code < 0:
                raise EmofuseError(f"an analysis worker was killed while loading its models (signal {-code}; often "
                                   "for lack of memory): try fewer --workers")
            raise EmofuseError(f"an analysis worker failed to start (exit code {code}; its error is printed above). "
                               "From a Python script, call emofuse.batch.run under `if __name__ == \"__main__\":` "
                               "(workers are spawned processes, which import the main module again)")
        for k in [k for k in (st["chunk"] or []) if k in st["left"]]:
            if attempts[k] > opts.retries:
                how = "killed, e.g. out of memory" if code is not None and code < 0 else f"exit code {code}"
                record(by_key[k], crashed(by_key[k][0].path, k, (why or f"the analysis process died ({how})")
                                          + f" on {attempts[k]} attempts"), attempts[k])
            else:
                queue.insert(0, [k])  # alone, so that an input that kills its worker takes only itself
        if queue:
            spawn()

    for _ in range(min(opts.workers, len(queue))):
        spawn()
    try:
        while workers:
            ready = wait(list(workers) + [s["proc"].sentinel for s in workers.values()],
                         timeout=None if opts.timeout is None else min(1.0, opts.timeout))
            for obj in ready:
                conn = obj if obj in workers else next((c for c, s in workers.items() if s["proc"].sentinel == obj), None)
                if conn is None or conn not in workers:
                    continue
                st = workers[conn]
                try:
                    kind, cid, payload = conn.recv()
                except (EOFError, OSError):
                    died(conn)
                    continue
                if kind == "fatal":
                    raise InputError(f"the analysis could not start: {cid}")
                if kind == "ready":
                    st["ready"] = True
                    assign(conn)
                elif kind == "result":
                    st["left"].discard(payload["key"])
                    st["since"] = time.monotonic()
                    record(by_key[payload["key"]], payload, attempts[payload["key"]])
                elif kind == "done":
                    st["chunk"], st["left"] = None, set()
                    assign(conn)
                if conn in workers and st["chunk"] is None and not queue:
                    try:
                        conn.send(None)
                    except OSError:
                        pass  # it holds nothing: nothing is lost
                    st["proc"].join(timeout=30)
                    workers.pop(conn, None)
            if opts.timeout is not None:
                now = time.monotonic()
                for conn, st in list(workers.items()):
                    if st["chunk"] and now - st["since"] > opts.timeout and not conn.poll():
                        st["proc"].kill()
                        died(conn, f"no result within --timeout {opts.timeout:g} s (its worker was stopped)")
    finally:
        for conn, st in workers.items():
            st["proc"].kill()


def crashed(path: str, key: str, why: str) -> dict[str, Any]:
    """The failed record of an input whose analysis never returned (its process died)."""
    from .result import AnalysisError, csv_rows

    error = f"{path}: {why}; analyse it alone (emofuse analyze) to see why"
    return {"key": key, "status": "failed", "error": error, "duration": None, "seconds": None,
            "rows": [_typed(r) for r in csv_rows(AnalysisError(path, error, "WorkerDied"))]}


# ------------------------------------------------------------------------------------------------ ray engine

def _need_ray() -> None:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingComponentError("--engine ray needs Ray Data: pip install 'emofuse[cluster]' "
                                    "(or pip install 'ray[data]')") from None


@contextlib.contextmanager
def _ray_session(opts: BatchOptions) -> Iterator[None]:
    """Ray started (a local cluster of this machine's cores on the loopback address) or joined (``--address``)
    before anything is written, and shut down after the run if it was started here."""
    import logging

    import ray

    if ray.is_initialized():  # the caller's own session
        yield
        return
    # Ray's C++ core logs an "E" line per actor (constructor arguments in its object store); Python-level
    # failures still surface as exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if opts.address:
        _reachable(opts.address)
        try:
            ray.init(address=opts.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise EmofuseError(
                f"cannot join the Ray cluster at --address {opts.address} ({type(e).__name__}: {e}); check the "
                "address (`ray status` on the head node prints it; `auto` finds a cluster started on this "
                "machine) and, under token authentication, that this machine has the cluster's token") from None
    else:
        ray.init(num_cpus=_cores(), include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield
    finally:
        ray.shutdown()


def _reachable(address: str) -> None:
    """A ``host:port`` address answers a TCP connection within 5 s (Ray itself would retry for minutes)."""
    import socket

    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise EmofuseError(f"no Ray cluster answers at --address {address} ({e.strerror or e}); start one with "
                           "`ray start --head` and give the address it prints (or `auto` on that machine)") from None


class _RayAnalyzer:
    """A Ray Data actor: one Analyzer, a batch of (key, path) rows in, one record per input out."""

    def __init__(self, options: dict[str, Any], threads: int) -> None:
        self.analyzer = _make_analyzer(options, threads)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        jobs = [(str(k), str(p)) for keys, paths in zip(batch["keys"], batch["paths"]) for k, p in zip(keys, paths)]
        _maybe_crash(jobs)
        return {"record": [json.dumps(r, ensure_ascii=False) for r in analyze_chunk(self.analyzer, jobs)]}


def _run_ray(todo: list[tuple[Job, str, dict[str, Any]]], analyzer_options: Any, opts: BatchOptions,
             record: Callable[..., None]) -> None:
    """Two passes of Ray Data: the planned chunks, then each input of a chunk that failed (its actor died past
    Ray's bounded retries), alone; one that fails alone too is recorded as failed. Failed blocks are skipped
    (``max_errored_blocks``), so one bad input never stops the run."""
    by_key = {k: (j, k, i) for j, k, i in todo}
    seen: set[str] = set()

    def collect(rec: dict[str, Any], attempts: int) -> None:
        seen.add(rec["key"])
        record(by_key[rec["key"]], rec, attempts)

    _ray_pass(plan_chunks(todo, opts), analyzer_options, opts, lambda rec: collect(rec, 1))
    left = [t for t in todo if t[1] not in seen]
    if left:
        _ray_pass([[t] for t in left], analyzer_options, opts, lambda rec: collect(rec, 2))
    for j, k, _ in left:
        if k not in seen:
            record(by_key[k], crashed(j.path, k, "the analysis process died twice (Ray actor, alone the second "
                                                 "time)"), 2)


def _ray_pass(chunks: list[list[tuple[Job, str, dict[str, Any]]]], analyzer_options: Any, opts: BatchOptions,
              on_record: Callable[[dict[str, Any]], None]) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.max_errored_blocks = len(chunks)  # a chunk whose actor died is skipped (and retried alone), not fatal
    threads = opts.worker_threads()
    # One row per chunk, one chunk per call: the same chunks as the local engine, so the same ASR packing
    # and the same results.
    rows = [{"keys": [k for _, k, _ in c], "paths": [j.path for j, _, _ in c]} for c in chunks]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    with warnings.catch_warnings():
        # Ray Data's default restarts a dead actor and retries its chunk without end (an input that kills
        # its worker would loop); bounded here. The only way to say so is the remote args that Ray
        # deprecates (they go in 2.64: pinned below it).
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(_RayAnalyzer, fn_constructor_kwargs={"options": _analyzer_dict(analyzer_options),
                                                                 "threads": threads},
                            # one chunk at a time per actor, as the local engine hands them out: a chunk
                            # queued behind a long one would wait while another actor idles
                            batch_size=1, compute=ray.data.ActorPoolStrategy(
                                size=min(opts.workers, len(rows)), max_tasks_in_flight_per_actor=1),
                            num_cpus=threads, max_restarts=opts.retries, max_task_retries=opts.retries)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for text in batch["record"]:
            on_record(json.loads(str(text)))
