"""The `emofuse` command: thin wrappers over the Python API, every option declared once here.

Exit status: 0 success; 1 some inputs (or items) failed, each reported, the rest done; 2 a usage, input or
option error, named with its fix; 3 an internal error (a bug: the message asks for a report). No command
prints a traceback unless ``EMOFUSE_DEBUG=1``.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from .errors import EmofuseError

BUG_REPORT = ("this is a bug in emofuse, not a problem with your input: please report it to the emofuse "
              "maintainers with the command you ran and this message (EMOFUSE_DEBUG=1 prints the traceback)")


class _Group(TyperGroup):
    """Maps every EmofuseError to a one-line message and exit status 2, anything else to exit 3."""

    def invoke(self, ctx: Any) -> Any:
        from typer._click.exceptions import ClickException

        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except BrokenPipeError:
            _closed_stdout()  # `emofuse ... | head`: the reader left; not an error of ours
            raise typer.Exit(0) from None
        except EmofuseError as e:
            if os.environ.get("EMOFUSE_DEBUG"):
                raise
            _err_console().print(f"[red]error:[/] {_esc(str(e))}")
            raise typer.Exit(2) from None
        except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback
            if os.environ.get("EMOFUSE_DEBUG"):
                raise
            _err_console().print(f"[red]internal error:[/] {type(e).__name__}: {_esc(str(e))}\n{BUG_REPORT}")
            raise typer.Exit(3) from None


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Offline multimodal emotion recognition from voice, face and words.")


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class Format(str, Enum):
    json = "json"
    csv = "csv"
    table = "table"


def _err_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # one message, one line: never wrapped mid-path


# The analysis options `analyze` and `batch` share (AnalyzerOptions checks them).
Modalities = Annotated[str, typer.Option(help="comma-separated subset of voice,face,text")]
AsrModel = Annotated[str, typer.Option(help="whisper-base, whisper-tiny.en or a CTranslate2 Whisper dir")]
Language = Annotated[Optional[str], typer.Option(help="force the language (ISO code), else detect")]
BeamSize = Annotated[int, typer.Option(help="ASR beam size (1 = greedy, fastest)")]
Fps = Annotated[float, typer.Option(help="video frames per second sampled for faces")]
MaxDuration = Annotated[float, typer.Option(help="refuse media longer than this many seconds")]
Fusion = Annotated[Optional[str], typer.Option(help="poe (the default rule: product of calibrated experts, "
                                               "docs/fusion.md), confidence (the older rule) or a fusion network "
                                               "(`emofuse networks`; needs --checkpoint)")]
Checkpoint = Annotated[Optional[Path], typer.Option(help="trained fusion network to fuse with (.safetensors, or "
                                                     "its .onnx graph from `emofuse export`: no torch needed)")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="no progress bars")]
AsrWindow = Annotated[float, typer.Option(help="seconds per Whisper window: 30, or 10 (2-3x cheaper for short "
                                          "utterances; voice heads trained on it ship)")]
MinTextQuality = Annotated[Optional[float], typer.Option(help="transcripts scoring below this (0..1) are shown "
                                                         "but not fused; default: the shipped threshold")]


def _analyzer_options(modalities: str, asr_model: str, language: str | None, beam_size: int, fps: float,
                      max_duration: float, fusion: str | None, checkpoint: Path | None,
                      min_text_quality: float | None, asr_window: float = 30.0) -> Any:
    from .pipeline import AnalyzerOptions

    return AnalyzerOptions(modalities=tuple(m.strip() for m in modalities.split(",") if m.strip()),
                           asr_model=asr_model, language=language, beam_size=beam_size, fps=fps,
                           max_duration=max_duration, fusion=fusion, checkpoint=str(checkpoint) if checkpoint else None,
                           min_text_quality=min_text_quality, asr_window=asr_window)


@app.command()
def analyze(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="video, audio or image files, or folders of them")] = None,
    text: Annotated[Optional[list[str]], typer.Option("--text", help="text to analyse (repeatable; one input each)")] = None,
    text_file: Annotated[Optional[list[Path]], typer.Option("--text-file", help="text file, one utterance per line")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="output format")] = Format.table,
    plot: Annotated[Optional[Path], typer.Option(help="write a PNG timeline (several inputs: NAME-<stem>.png)")] = None,
    modalities: Modalities = "voice,face,text",
    asr_model: AsrModel = "whisper-base",
    language: Language = None,
    beam_size: BeamSize = 1,
    fps: Fps = 5.0,
    max_duration: MaxDuration = 3600.0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write json/csv here instead of stdout")] = None,
    fusion: Fusion = None,
    checkpoint: Checkpoint = None,
    min_text_quality: MinTextQuality = None,
    asr_window: AsrWindow = 30.0,
) -> None:
    """Analyse recordings, images and text; print one result per input."""
    from .media import expand_inputs
    from .pipeline import Analyzer
    from .result import CSV_COLUMNS, AnalysisError

    err = _err_console()
    jobs: list[tuple[str, object]] = [("media", p) for p in expand_inputs(list(inputs or []))]
    jobs += [("text", t) for t in (text or [])]
    jobs += [("textfile", p) for p in (text_file or [])]
    if not jobs:
        err.print("[red]nothing to analyse:[/] give files or folders, --text or --text-file")
        raise typer.Exit(2)
    opts = _analyzer_options(modalities, asr_model, language, beam_size, fps, max_duration, fusion, checkpoint,
                             min_text_quality, asr_window)
    out = _open_output(output) if output else sys.stdout  # a bad -o fails before the models load
    with err.status("loading models…"):
        analyzer = Analyzer(opts)

    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore") if fmt is Format.csv else None
    if writer:
        _write(out, fmt, None, writer.writeheader)
    failed = 0
    n_plots = sum(1 for _ in jobs)
    for i, r in enumerate(_results(analyzer, jobs, err)):
        if isinstance(r, AnalysisError):
            failed += 1
            err.print(f"[red]✗[/] {_esc(r.error)}")
        _write(out, fmt, writer, r)
        if plot and not isinstance(r, AnalysisError):
            if not r.segments:
                err.print(f"[yellow]no timeline for {_esc(r.input)}:[/] it has no segments "
                          f"({_esc('; '.join(r.notes) or 'nothing to plot')})")
                continue
            from .report import plot_timeline

            stem = re.sub(r"[^\w.-]+", "", Path(r.input).stem) or "text"
            target = plot if n_plots == 1 else plot.with_name(f"{plot.stem}-{i:02d}-{stem}.png")
            try:
                err.print(f"timeline: {_esc(str(plot_timeline(r, target)))}")
            except EmofuseError as e:  # this input's plot is lost, not the batch
                failed += 1
                err.print(f"[red]✗[/] {_esc(str(e))}")
    if output:
        _write(out, fmt, None, out.close)
    if failed:
        err.print(f"[yellow]{failed} of {len(jobs)} inputs failed[/]")
        raise typer.Exit(1)


def _write(out: Any, fmt: Format, writer: Any, r: Any) -> None:
    """One input's result in the chosen format (or ``r()`` when it is a callable: the CSV header, the final
    close); a failed write (full disk, closed pipe) is an InputError."""
    from .errors import InputError
    from .result import AnalysisError, csv_rows

    try:
        if callable(r):
            r()
        elif fmt is Format.json:
            print(r.to_json(), file=out, flush=True)
        elif writer:
            writer.writerows(csv_rows(r))
            out.flush()
        elif not isinstance(r, AnalysisError):
            from rich.console import Console

            from .report import table

            # Not a terminal (a pipe, a file): wide enough that labels are never cut.
            Console(file=out, width=None if out.isatty() else 150).print(table(r))
    except OSError as e:
        raise InputError(f"cannot write the results ({e.strerror or e}); free some space or write elsewhere with "
                         "-o PATH") from None


def _open_output(path: Path) -> Any:
    """``-o PATH`` opened for writing (its folder created), or an InputError naming the fix."""
    from .errors import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as e:
        raise InputError(f"cannot write the output file {path} ({e.strerror or e}); give -o a writable file path") from None


def _results(analyzer, jobs: list[tuple[str, object]], err):  # type: ignore[no-untyped-def]
    """Each job's result in order: media through Analyzer.iter_analyze (short recordings share ASR windows; a
    progress bar on stderr for long ones), then text."""
    from .result import AnalysisError

    media = [Path(str(item)) for kind, item in jobs if kind == "media"]
    with _ProgressBars(err) as bars:
        yield from analyzer.iter_analyze(media, on_progress=bars.update if err.is_terminal else None)
    for kind, item in jobs:
        try:
            if kind == "text":
                yield analyzer.analyze_text(str(item), name="<text>")
            elif kind == "textfile":
                from .media import read_text_file

                yield analyzer.analyze_text(read_text_file(Path(str(item))), name=str(item))
        except EmofuseError as e:
            yield AnalysisError(str(item), str(e), type(e).__name__)


class _ProgressBars:
    """A transient progress bar per long input, shown while ASR reports progress on it."""

    def __init__(self, console: Any) -> None:
        self.console, self.progress, self.tasks = console, None, {}  # type: ignore[var-annotated]

    def __enter__(self) -> "_ProgressBars":
        return self

    def update(self, name: str, fraction: float) -> None:
        if self.progress is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(Path(name).name, total=1.0)
        self.progress.update(self.tasks[name], completed=min(fraction, 1.0))
        if fraction >= 1.0:
            self.progress.remove_task(self.tasks.pop(name))

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


class BatchFormat(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


@app.command()
def batch(
    inputs: Annotated[list[str], typer.Argument(help="folders, files, glob patterns ('clips/**/*.mp4') or manifests "
                                                    "(.csv / .jsonl with a 'path' column; other columns are kept)")],
    out: Annotated[Path, typer.Option(help="the run's folder: created, or resumed where it stopped")],
    fmt: Annotated[BatchFormat, typer.Option("--format", "-f", help="segment rows as JSON Lines or Parquet")] = BatchFormat.jsonl,
    workers: Annotated[int, typer.Option(help="analysis processes (local) or actors (ray), each loading the models "
                                              "once (~0.7 GB each)")] = 2,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads per worker (default: the cores divided among "
                                                         "the workers)")] = None,
    engine: Annotated[Engine, typer.Option(help="local processes, or Ray Data (the 'cluster' extra: pip install emofuse\\[cluster])")] = Engine.local,
    address: Annotated[Optional[str], typer.Option(help="--engine ray: a running cluster (e.g. ray://head:10001 or "
                                                       "auto); default: a local cluster on this machine")] = None,
    chunk: Annotated[int, typer.Option(help="inputs handed to a worker at once (short clips share ASR windows)")] = 8,
    timeout: Annotated[Optional[float], typer.Option(help="local engine: stop a worker that finishes no input for "
                                                          "this many seconds (its inputs retried alone, then failed); "
                                                          "default: no limit")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="analyse again the inputs an earlier run "
                                                                   "recorded as failed (their rows are replaced)")] = False,
    no_progress: NoProgress = False,
    modalities: Modalities = "voice,face,text",
    asr_model: AsrModel = "whisper-base",
    language: Language = None,
    beam_size: BeamSize = 1,
    fps: Fps = 5.0,
    max_duration: MaxDuration = 3600.0,
    fusion: Fusion = None,
    checkpoint: Checkpoint = None,
    min_text_quality: MinTextQuality = None,
    asr_window: AsrWindow = 30.0,
) -> None:
    """Analyse a collection into a folder of JSON Lines or Parquet rows; re-run the same command to resume."""
    from .batch import BatchOptions, run

    aopts = _analyzer_options(modalities, asr_model, language, beam_size, fps, max_duration, fusion, checkpoint,
                              min_text_quality, asr_window)
    bopts = BatchOptions(out=out, format=fmt.value, engine=engine.value, workers=workers, threads=threads,
                         address=address, chunk=chunk, retry_failed=retry_failed, timeout=timeout)
    err = _err_console()
    bar = _BatchBar(err, on=not no_progress)
    try:
        s = run(inputs, aopts, bopts, on_progress=bar.advance, on_start=bar.start)
    finally:
        bar.stop()
    rate = f", {s.audio_seconds / 3600:.2f} audio-hours at {s.to_dict()['audio_hours_per_hour']}x" if s.audio_seconds else ""
    err.print(f"{s.done} analysed ({s.failed} failed), {s.skipped} already done ({s.skipped_failed} failed), "
              f"{s.rejected} rejected, {s.duplicates} duplicates "
              f"in {s.wall:.1f} s{rate}; rows in {_esc(str(out))}")
    if s.failed or s.skipped_failed or s.rejected:
        raise typer.Exit(1)  # each failure is in inputs.jsonl (status failed / invalid / missing, with its error)


class _BatchBar:
    """One bar over a batch's inputs: done / total, inputs/s, ETA and audio-hours; failures printed above it."""

    def __init__(self, console: Any, on: bool) -> None:
        self.console, self.on, self.p, self.task, self.audio = console, on, None, None, 0.0

    def start(self, total: int, done: int) -> None:
        if not self.on:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn)

        self.p = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                          TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[audio]}"),
                          TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
        self.p.start()
        self.task = self.p.add_task("batch", total=total, completed=done, rate="", audio="")
        self.t0 = time.perf_counter()
        self.n = 0

    def advance(self, entry: dict[str, Any]) -> None:
        if entry.get("status") not in ("ok",):
            msg = entry.get("error") or entry.get("status")
            self.console.print(f"[red]✗[/] {entry.get('status')}: {_esc(str(msg))}")
        if self.p is None:
            return
        self.n += 1
        self.audio += entry.get("duration") or 0.0
        dt = max(1e-9, time.perf_counter() - self.t0)
        self.p.update(self.task, advance=1, rate=f"{self.n / dt:.2f} inputs/s",
                      audio=f"{self.audio / 3600:.2f} audio-h")

    def stop(self) -> None:
        if self.p is not None:
            self.p.stop()


@app.command()
def export(
    checkpoints: Annotated[Optional[list[Path]], typer.Argument(help="trained fusion networks (.safetensors) to export")] = None,
    out: Annotated[Path, typer.Option(help="folder for the graphs: heads/<name>.onnx and <checkpoint>.onnx, each "
                                           "with its .onnx.json sidecar")] = Path("onnx"),
    heads: Annotated[bool, typer.Option(help="also export the shipped expert heads")] = True,
) -> None:
    """Write the shipped heads and trained fusion networks as ONNX graphs, each checked against its source;
    `analyze --checkpoint X.onnx` then fuses without torch."""
    from rich.console import Console
    from rich.table import Table

    from .export import TOLERANCE, export_all

    if not checkpoints and not heads:
        raise typer.BadParameter("nothing to export: give checkpoints, or leave --no-heads out")
    done = export_all(out, list(checkpoints or []), heads=heads)
    t = Table(title=f"ONNX graphs in {out} (fp32; kept only if max |diff| <= {TOLERANCE:g})")
    for c in ("graph", "kind", "probes", "max |diff|", "top-1 agree", "ms source", "ms ONNX"):
        t.add_column(c, justify="left" if c in ("graph", "kind") else "right", overflow="fold")
    for e in done:
        t.add_row(str(e.graph.relative_to(out)), e.kind, str(e.probes), f"{e.max_diff:.1e}", f"{e.agreement:.4f}",
                  f"{e.ms_source:.3f}", f"{e.ms_graph:.3f}")
    Console(width=max(100, Console().width)).print(t)
    print("max |diff|: probabilities (and valence) against the source on random standardised inputs (networks: "
          "random presence masks); ms: per item, batch of 1")


@app.command()
def setup() -> None:
    """Prepare the models once (join split weights, verify checksums, build the text encoder graph)."""
    from .errors import MissingComponentError
    from .store import COMPONENTS, resolve

    err = _err_console()
    for name, c in COMPONENTS.items():
        try:
            err.print(f"{name}: {resolve(name)}")
        except MissingComponentError as e:
            if not c.optional:
                raise
            err.print(f"{name}: not installed, optional ({_esc(str(e))})")
    from .features import face_net
    from .features import text as text_features

    text_features.setup()
    face_net.setup()
    err.print("[green]ready[/]")


CorpusName = Annotated[str, typer.Option("--corpus", help="corpus name (emofuse.corpora.CORPORA)")]
DataRoot = Annotated[Path, typer.Option("--data", help="the corpus folder or the shared data folder")]
Workers = Annotated[int, typer.Option(min=1, help="feature-extraction processes (each loads the model once)")]
Cache = Annotated[Optional[Path], typer.Option(help="feature cache folder (default: $EMOFUSE_FEATURE_CACHE, else "
                                                    "$EMOFUSE_CACHE/features, else ~/.cache/emofuse/features)")]


@app.command()
def extract(
    corpus: CorpusName,
    data: DataRoot,
    extractor: Annotated[str, typer.Option(help="extractor name (emofuse.extractors.EXTRACTORS)")],
    cache: Cache = None,
    workers: Workers = 1,
    limit: Annotated[Optional[int], typer.Option(min=1, help="only the first N items (a smoke test)")] = None,
    no_progress: NoProgress = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Extract a corpus's features into the resumable cache; exit 1 when some items failed (listed)."""
    import json

    from .corpora import prepare
    from .extract import extract as run_extract
    from .extractors import EXTRACTORS

    EXTRACTORS[extractor]  # an unknown name fails before the corpus is listed
    m = prepare(corpus, data)
    for w in m.warnings:
        _err_console().print(f"[yellow]warning:[/] {_esc(w)}")
    items = list(m)[:limit] if limit else list(m)
    rep = run_extract(items, extractor, cache, workers=workers, progress=not no_progress)
    print(json.dumps(rep.to_dict(), indent=2) if json_out else rep.summary())
    if rep.n_failed:
        raise typer.Exit(1)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="a TOML run config (configs/*.toml): a \\[model] table trains "
                                                "linear heads, a \\[fusion] table a fusion network")],
    save: Annotated[Optional[Path], typer.Option(help="also write the trained model here (.safetensors): the head "
                                                      "for analyze, or the network checkpoint")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (overrides the config's `out`)")] = None,
    workers: Workers = 1,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for fitting (default 1)")] = None,
    resume: Annotated[bool, typer.Option(help="continue a [finetune] or [face_cnn] run from its out/checkpoint.pt")] = False,
    stop_after_steps: Annotated[Optional[int], typer.Option(min=1, help="a [finetune] or [face_cnn] run: pause after N steps "
                                                            "(checkpoint written; continue with --resume)")] = None,
    no_progress: NoProgress = False,
) -> None:
    """Train and evaluate a linear head, a fusion network or a fine-tuned text encoder from a config
    (report.md or results.json, plots)."""
    from dataclasses import replace

    from .training.config import load_config
    from .training.run import run

    cfg = load_config(config)
    if out is not None:
        cfg = replace(cfg, out=str(out))
    r = run(cfg, workers=workers, progress=not no_progress, save=save, threads=threads, resume=resume,
            stop_after_steps=stop_after_steps)
    if r.get("stopped"):
        print(f"{cfg.name}: paused at epoch {r['epoch']}, step {r['step']} of {r['steps_per_epoch']}; "
              f"checkpoint {r['checkpoint']}; continue with: emofuse train {config} --resume")
        return
    if cfg.finetune is not None:
        dev = r.get("dev", {}).get("per_corpus", {})
        figs = "  ".join(f"{c} {m} {dev[c][m]:.3f}" for c, m in cfg.finetune.select if c in dev)
        print(f"{cfg.name} (finetune): best epoch {r['best_epoch']} of {cfg.finetune.epochs} on the selection part; "
              f"dev (validation figures): {figs}  ({r['train_seconds']:.0f} s training)")
        print(f"results: {Path(cfg.out) / 'results.json'}")
        if "saved" in r:
            print(f"saved: {r['saved']} (LoRA adapters, {LORA_NOTE})")
        return
    if cfg.face_cnn is not None:
        t = r.get("test")
        figs = (f"held-out {'/'.join(t['split'])} split: accuracy {t['WA']:.3f}, balanced {t['UA']:.3f}" if t
                else "no held-out split")
        print(f"{cfg.name} (face_cnn): best epoch {r['best_epoch']} of {cfg.face_cnn.epochs} on the selection part "
              f"(accuracy {r['selection']['WA']:.3f}); {figs}  ({r['train_seconds']:.0f} s training)")
        print(f"results: {Path(cfg.out) / 'results.json'}")
        if "saved" in r:
            print(f"saved: {r['saved']} (`emofuse setup` exports its ONNX graph)")
        return
    s = r["summary"]
    what = cfg.fusion.model if cfg.fusion is not None else "linear"
    extra = f", C per split {r['chosen_C']}" if "chosen_C" in r else ""
    print(f"{cfg.name} ({what}): {r['protocol']}, {len(r['folds'])} split(s), {r['evaluated_on']}: "
          f"UA {s['UA']['text']}  WA {s['WA']['text']}  macro-F1 {s['macro_f1']['text']}{extra}  ({r['seconds']:.1f} s)")
    for p in r["other_protocols"]:
        ps = p["summary"]
        print(f"  {p['protocol']}, {len(p['folds'])} split(s), {p['evaluated_on']}: UA {ps['UA']['text']}  "
              f"WA {ps['WA']['text']}  macro-F1 {ps['macro_f1']['text']}")
    print(f"report: {Path(cfg.out) / 'report.md'}")
    if "saved" in r:
        print(f"saved: {r['saved']['path']} ({r['saved']['what']})")


LORA_NOTE = "merged into MiniLM by `emofuse setup`"


@app.command()
def evaluate(
    head: Annotated[Path, typer.Option(help="a saved head (.safetensors), e.g. src/emofuse/weights/voice-whisper-base.safetensors")],
    corpus: CorpusName,
    data: DataRoot,
    extractor: Annotated[Optional[str], typer.Option(help="the head's extractor (default: the one it records)")] = None,
    split: Annotated[str, typer.Option(help="test, val (val or dev) or all")] = "test",
    cache: Cache = None,
    workers: Workers = 1,
    limit: Annotated[Optional[int], typer.Option(min=1, help="a seeded subsample of N items")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="metrics JSON (default: "
                                                   "runs/eval-<head>-<corpus>-<split>.json)")] = None,
    no_progress: NoProgress = False,
) -> None:
    """Evaluate a saved head on a corpus."""
    from .training.run import evaluate_head

    r = evaluate_head(head, corpus, data, extractor, split, cache, workers, limit, output, not no_progress)
    m = r["metrics"]
    print(f"{corpus} {split} ({r['n']} items): UA {100 * m['UA']:.1f}  WA {100 * m['WA']:.1f}  "
          f"macro-F1 {100 * m['macro_f1']:.1f}  -> {r['out']}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="processes, each with its own models (~0.7 GB each)")] = 1,
    token: Annotated[Optional[str], typer.Option(envvar="EMOFUSE_TOKEN", help="require 'Authorization: Bearer "
                                                 "TOKEN' on /v1/* (or set EMOFUSE_TOKEN)")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="largest request body, MiB")] = 256.0,
    max_files: Annotated[int, typer.Option(help="files per request")] = 32,
    max_duration: Annotated[float, typer.Option(help="refuse media longer than this many seconds")] = 1800.0,
    concurrency: Annotated[int, typer.Option(help="analyses at once per worker (each loads its own models)")] = 1,
    queue: Annotated[int, typer.Option(help="requests that may wait for an analysis; more get 429")] = 16,
    timeout: Annotated[float, typer.Option(help="seconds per request, waiting included (then 504)")] = 600.0,
    modalities: Annotated[str, typer.Option(help="comma-separated subset of voice,face,text")] = "voice,face,text",
    asr_model: Annotated[str, typer.Option(help="whisper-base, whisper-tiny.en or a CTranslate2 Whisper dir")] = "whisper-base",
    language: Annotated[Optional[str], typer.Option(help="force the language (ISO code), else detect")] = None,
    fps: Annotated[float, typer.Option(help="video frames per second sampled for faces")] = 5.0,
    asr_window: Annotated[float, typer.Option(help="seconds per Whisper window for uploads: 30, or 10 (2-3x cheaper "
                                                   "for short clips); WS /v1/live uses 10 unless its start message "
                                                   "asks for 30")] = 30.0,
) -> None:
    """Serve the analysis over HTTP: POST /v1/analyze (files or text), GET /v1/models, the OpenAPI schema at /docs."""
    from .errors import MissingComponentError
    from .pipeline import AnalyzerOptions

    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart)
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise MissingComponentError(f"emofuse serve needs its extra ({e.name} is missing): "
                                    "pip install 'emofuse[serve]'") from None
    from .serve.app import ServeOptions, run

    opts = ServeOptions(host=host, port=port, workers=workers, token=token, max_upload_mb=max_upload_mb,
                        max_files=max_files, concurrency=concurrency, queue=queue, timeout=timeout,
                        analyzer=AnalyzerOptions(modalities=tuple(m.strip() for m in modalities.split(",") if m.strip()),
                                                 asr_model=asr_model, language=language, fps=fps,
                                                 max_duration=max_duration, asr_window=asr_window))
    run(opts)


@app.command()
def live(
    source: Annotated[Optional[Path], typer.Option("--from", help="replay this recording as a live stream")] = None,
    fast: Annotated[bool, typer.Option(help="replay as fast as it goes instead of at real time")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="events as 'text' lines or 'json' lines")] = "text",
    modalities: Annotated[str, typer.Option(help="comma-separated subset of voice,face,text")] = "voice,face,text",
    asr_model: Annotated[str, typer.Option(help="whisper-base, whisper-tiny.en or a CTranslate2 Whisper dir")] = "whisper-base",
    partials: Annotated[bool, typer.Option(help="print partial transcripts while someone speaks")] = True,
    asr_window: Annotated[float, typer.Option(help="seconds per Whisper window: 10 (the live default: one "
                                                   "utterance costs a third of a 30 s window) or 30")] = 10.0,
    mic: Annotated[Optional[str], typer.Option(help="a microphone as FORMAT:NAME (PyAV/FFmpeg input), e.g. "
                                                    "alsa:default, pulse:default, avfoundation::0")] = None,
    camera: Annotated[Optional[str], typer.Option(help="a camera as FORMAT:NAME, e.g. v4l2:/dev/video0, "
                                                       "avfoundation:0")] = None,
    seconds: Annotated[Optional[float], typer.Option(min=0.1, help="stop after this many seconds of stream "
                                                                    "(default: until Ctrl-C)")] = None,
) -> None:
    """Live analysis: events as they happen (faces, partial words, one line per utterance) from a microphone
    and/or a camera (`--mic`, `--camera`) or a replayed recording (`--from FILE`)."""
    import json

    from .errors import InputError
    from .live import LiveEngine, LiveOptions, capture, open_device, replay
    from .pipeline import Analyzer, AnalyzerOptions

    if (source is None) == (mic is None and camera is None):
        raise InputError("emofuse live takes either --from FILE (a recording replayed at real time) or --mic and/or "
                         "--camera (capture devices, e.g. --mic alsa:default --camera v4l2:/dev/video0)")
    if fmt not in ("text", "json"):
        raise InputError(f"--format must be 'text' or 'json', not {fmt!r}")
    from .media import probe

    if source is not None:
        probe(source)  # a bad file is refused before the models load
    for kind, spec in (("mic", mic), ("camera", camera)):
        if spec:
            open_device(spec, kind).close()  # so is a device that cannot be opened
    opts = AnalyzerOptions(modalities=tuple(m.strip() for m in modalities.split(",") if m.strip()), asr_model=asr_model)
    live_opts = LiveOptions(partials=partials, asr_window=asr_window)
    if "voice" in opts.modalities:
        from .pipeline import check_window

        check_window(asr_model, asr_window)  # before the models load
    err = _err_console()
    with err.status("loading models…"):
        analyzer = Analyzer(opts)

    def show(ev: dict[str, Any]) -> None:
        if fmt == "json":
            print(json.dumps(ev, ensure_ascii=False), flush=True)
        elif ev["type"] == "utterance" and ev.get("segment"):
            s = ev["segment"]
            f = s.get("fused") or {}
            print(f"[{s['start']:7.2f}–{s['end']:7.2f}] {f.get('label', '-'):>9} {f.get('confidence', 0):.2f}  "
                  f"v {f.get('valence', 0):+.2f} a {f.get('arousal', 0):+.2f}  {s['text']}", flush=True)
        elif ev["type"] == "partial":
            err.print(f"[dim]… {_esc(ev['text'])}[/]")
        elif ev["type"] == "dropped":
            err.print(f"[yellow]{_esc(ev['detail'])}[/]")

    session = LiveEngine(analyzer).session(live_opts)
    if source is not None:
        replay(session, str(source), realtime=not fast, on_event=show)
    else:
        err.print("[dim]listening (Ctrl-C stops)…[/]")
        capture(session, mic, camera, seconds=seconds, on_event=show, realtime=not fast)
    analyzer.close()
    st = session.stats
    err.print(f"{st['utterances']} utterance(s), {st['frames']} face frame(s); compute: speech {st['speech_compute']:.1f} s, "
              f"faces {st['face_compute']:.1f} s, for {session.now:.1f} s of stream")


@app.command()
def networks() -> None:
    """List the registered fusion networks (emofuse.networks.NETWORKS)."""
    from rich.console import Console
    from rich.table import Table

    from .networks import NETWORKS

    t = Table("name", "what")
    for name, cls in NETWORKS.items():
        t.add_row(name, " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()))  # first paragraph
    Console(width=None if sys.stdout.isatty() else 200).print(t)  # piped: never cut names


@app.command()
def components() -> None:
    """List the model components, where they come from and their licences."""
    from rich.console import Console
    from rich.table import Table

    from .store import COMPONENTS

    t = Table("name", "package", "path", "sha256", "licence", "what")
    for c in COMPONENTS.values():
        t.add_row(c.name, f"{c.dist}=={c.pin}", c.path, c.sha256[:16] + "…", c.licence, c.note)
    Console(width=None if sys.stdout.isatty() else 200).print(t)  # piped: never cut names


def _closed_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not fail again (Python's
    documented recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # raised outside a command (e.g. while printing --help)
        _closed_stdout()
        sys.exit(0)


if __name__ == "__main__":
    main()
