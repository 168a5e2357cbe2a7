"""The `emofuse` command: thin wrappers over the Python API."""

from __future__ import annotations

import csv
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import EmofuseError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Offline multimodal emotion recognition from voice, face and words.")


class Format(str, Enum):
    json = "json"
    csv = "csv"
    table = "table"


def _err_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def analyze(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="video, audio or image files, or folders of them")] = None,
    text: Annotated[Optional[list[str]], typer.Option("--text", help="text to analyse (repeatable; one input each)")] = None,
    text_file: Annotated[Optional[list[Path]], typer.Option("--text-file", help="text file, one utterance per line")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="output format")] = Format.table,
    plot: Annotated[Optional[Path], typer.Option(help="write a PNG timeline (several inputs: NAME-<stem>.png)")] = None,
    modalities: Annotated[str, typer.Option(help="comma-separated subset of voice,face,text")] = "voice,face,text",
    asr_model: Annotated[str, typer.Option(help="whisper-base, whisper-tiny.en or a CTranslate2 Whisper dir")] = "whisper-base",
    language: Annotated[Optional[str], typer.Option(help="force the language (ISO code), else detect")] = None,
    beam_size: Annotated[int, typer.Option(help="ASR beam size (1 = greedy, fastest)")] = 1,
    fps: Annotated[float, typer.Option(help="video frames per second sampled for faces")] = 5.0,
    max_duration: Annotated[float, typer.Option(help="refuse media longer than this many seconds")] = 3600.0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write json/csv here instead of stdout")] = None,
    fusion: Annotated[Optional[str], typer.Option(help="late (expert-level, default) or a fusion network "
                                                  "(`emofuse models`; needs --checkpoint)")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="trained fusion network (.safetensors) to fuse with")] = None,
) -> None:
    """Analyse recordings, images and text; print one result per input."""
    from .media import expand_inputs
    from .pipeline import Analyzer, AnalyzerOptions
    from .result import CSV_COLUMNS, AnalysisError, csv_rows

    err = _err_console()
    jobs: list[tuple[str, object]] = [("media", p) for p in expand_inputs(list(inputs or []))]
    jobs += [("text", t) for t in (text or [])]
    jobs += [("textfile", p) for p in (text_file or [])]
    if not jobs:
        err.print("[red]nothing to analyse:[/] give files or folders, --text or --text-file")
        raise typer.Exit(2)
    try:
        if checkpoint is not None and fusion is None:
            from .training.fusion import read_meta  # no torch: the name is in the metadata

            fusion = str(read_meta(checkpoint).get("model"))
        opts = AnalyzerOptions(modalities=tuple(m.strip() for m in modalities.split(",") if m.strip()),
                               asr_model=asr_model, language=language, beam_size=beam_size, fps=fps,
                               max_duration=max_duration, fusion=fusion or "late",
                               checkpoint=str(checkpoint) if checkpoint else None)
        with err.status("loading models…"):
            analyzer = Analyzer(opts)
    except EmofuseError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2)

    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore") if fmt is Format.csv else None
    if writer:
        writer.writeheader()
    failed = 0
    n_plots = sum(1 for _ in jobs)
    for i, (kind, item) in enumerate(jobs):
        r = _run_one(analyzer, kind, item, err)
        if isinstance(r, AnalysisError):
            failed += 1
            err.print(f"[red]✗[/] {r.error}")
        if fmt is Format.json:
            print(r.to_json(), file=out, flush=True)
        elif writer:
            writer.writerows(csv_rows(r))
        elif not isinstance(r, AnalysisError):
            from rich.console import Console

            from .report import table

            # Not a terminal (a pipe, a file): wide enough that labels are never cut.
            Console(file=out, width=None if out.isatty() else 150).print(table(r))
        if plot and not isinstance(r, AnalysisError) and r.segments:
            from .report import plot_timeline

            stem = re.sub(r"[^\w.-]+", "", Path(r.input).stem) or "text"
            target = plot if n_plots == 1 else plot.with_name(f"{plot.stem}-{i:02d}-{stem}.png")
            err.print(f"timeline: {plot_timeline(r, target)}")
    if output:
        out.close()
    if failed:
        err.print(f"[yellow]{failed} of {len(jobs)} inputs failed[/]")
        raise typer.Exit(1)


def _run_one(analyzer, kind: str, item: object, err):  # type: ignore[no-untyped-def]
    from .result import AnalysisError

    try:
        if kind == "text":
            return analyzer.analyze_text(str(item), name="<text>")
        if kind == "textfile":
            p = Path(str(item))
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                return AnalysisError(str(p), f"{p}: cannot read text file ({e}); pass a UTF-8 text file", "InputError")
            return analyzer.analyze_text(lines, name=str(p))
        return _with_progress(analyzer, Path(str(item)), err)
    except EmofuseError as e:
        return AnalysisError(str(item), str(e), type(e).__name__)


def _with_progress(analyzer, path: Path, err):  # type: ignore[no-untyped-def]
    """A progress bar on stderr for long media (ASR reports how far it got)."""
    from .media import probe

    try:
        dur = probe(path, analyzer.media_options).duration
    except EmofuseError:
        dur = 0.0
    if dur < 30 or not err.is_terminal:
        return analyzer.safe_analyze(path)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, transient=True) as prog:
        task = prog.add_task(path.name, total=1.0)
        r = analyzer.safe_analyze(path, on_progress=lambda f: prog.update(task, completed=min(f, 1.0)))
    return r


@app.command()
def setup() -> None:
    """Prepare the models once (join split weights, verify checksums, build the text encoder graph)."""
    from .store import COMPONENTS, resolve

    err = _err_console()
    for name in COMPONENTS:
        try:
            err.print(f"{name}: {resolve(name)}")
        except EmofuseError as e:
            err.print(f"[red]{name}: {e}[/]")
            raise typer.Exit(1)
    from .features import text as text_features

    text_features.setup()
    err.print("[green]ready[/]")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def extract(ctx: typer.Context) -> None:
    """Extract features for a corpus into the resumable cache (`emofuse extract --help` for options)."""
    from .extract import main as extract_main

    raise typer.Exit(extract_main(list(ctx.args)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def train(ctx: typer.Context) -> None:
    """Train and evaluate a head, or a fusion network (a config with a [fusion] table), from a TOML config
    (`emofuse train --help` for options)."""
    args = list(ctx.args)
    cfg = next((a for a in args if not a.startswith("-")), None)
    if cfg is not None:
        from .training.fusion import is_fusion_config  # import-light: torch loads only when training

        if is_fusion_config(cfg):
            from .training.fusion import train_main as fusion_main

            raise typer.Exit(fusion_main(args))
    from .training.run import train_main

    raise typer.Exit(train_main(args))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def evaluate(ctx: typer.Context) -> None:
    """Evaluate a saved head on a corpus (`emofuse evaluate --help` for options)."""
    from .training.run import evaluate_main

    raise typer.Exit(evaluate_main(list(ctx.args)))


@app.command()
def models() -> None:
    """List the registered fusion networks."""
    from rich.console import Console
    from rich.table import Table

    from .models import FUSION_MODELS

    t = Table("name", "what")
    for name, cls in FUSION_MODELS.items():
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
