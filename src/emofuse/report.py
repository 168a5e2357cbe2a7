"""Human-facing renderings of results: a rich terminal table and a PNG timeline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError
from .result import MODALITIES, AnalysisError, AnalysisResult
from .taxonomy import EMOTIONS

if TYPE_CHECKING:
    from rich.console import RenderableType

COLORS = {"neutral": "#9e9e9e", "happy": "#f4c430", "sad": "#4a78c2", "angry": "#d62728",
          "fearful": "#8c564b", "disgusted": "#2ca02c", "surprised": "#e377c2"}


def _fmt_time(t: float) -> str:
    return f"{int(t // 60)}:{t % 60:05.2f}"


def table(r: AnalysisResult | AnalysisError) -> "RenderableType":
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if isinstance(r, AnalysisError):
        return Text(f"✗ {r.error}", style="bold red")
    # The heading sits above the table, not in its title: a title wraps at the table's width, which for
    # narrow tables cut long paths mid-name; a line of its own wraps only at the console's width.
    head = Text(f"{r.input}  ({r.kind}, {r.duration:.1f} s)", style="italic")
    t = Table(expand=False)
    t.add_column("time", no_wrap=True)
    t.add_column("text", overflow="fold", min_width=24, max_width=60)
    for m in MODALITIES:
        t.add_column(m, no_wrap=True)
    t.add_column("fused", style="bold", no_wrap=True)
    t.add_column("V / A", no_wrap=True)
    for s in r.segments:
        cells = []
        for m in MODALITIES:
            o = s.modalities.get(m)
            if o is None:
                cells.append(Text("—", style="dim"))
            else:
                lab = max(o.probs, key=o.probs.__getitem__)
                cells.append(Text(f"{lab} {o.confidence:.2f}", style=COLORS[lab]))
        f = s.fused
        when = "" if r.kind in ("image", "text") else f"{_fmt_time(s.start)}–{_fmt_time(s.end)}"
        t.add_row(when, s.text, *cells,
                  Text(f"{f.label} {f.confidence:.2f}", style=COLORS[f.label]) if f else Text("—"),
                  f"{f.valence:+.2f} / {f.arousal:+.2f}" if f else "")
    sm = r.summary
    cap = [f"overall: {sm['label']} (V {sm['valence']:+.2f}, A {sm['arousal']:+.2f})" if "label" in sm else "no answer"]
    cap += [f"note: {n}" for n in r.notes]
    t.caption = "\n".join(cap)
    t.caption_justify = "left"
    return Group(head, t)


def plot_timeline(r: AnalysisResult, path: str | Path) -> Path:
    """Per-modality and fused probabilities over time (stacked bars per segment), transcript underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [m for m in MODALITIES if any(m in s.modalities for s in r.segments)] + ["fused"]
    segs = list(r.segments)
    timed = r.kind in ("video", "audio")
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.3 * len(rows) + 1.6), sharex=True, squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        for i, s in enumerate(segs):
            x0, w = (s.start, max(s.end - s.start, 0.05)) if timed else (i, 0.9)
            probs = (s.fused.probs if s.fused else None) if row == "fused" else \
                (s.modalities[row].probs if row in s.modalities else None)
            if probs is None:
                continue
            bottom = 0.0
            for e in EMOTIONS:
                ax.bar(x0, probs[e], width=w, bottom=bottom, align="edge", color=COLORS[e], edgecolor="none")
                bottom += probs[e]
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 1])
        ax.set_ylabel(row, rotation=0, ha="right", va="center")
    ax = axes[-1, 0]
    for i, s in enumerate(segs):
        if s.text:
            x = s.start if timed else i
            ax.annotate(s.text[:40] + ("…" if len(s.text) > 40 else ""), (x, 0), xytext=(0, -14),
                        textcoords="offset points", rotation=-25, fontsize=7, ha="left", va="top",
                        annotation_clip=False)
    ax.set_xlabel("time (s)" if timed else "segment", loc="right")
    if not timed:
        ax.set_xticks([i + 0.45 for i in range(len(segs))], [str(i + 1) for i in range(len(segs))])
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[e]) for e in EMOTIONS]
    fig.legend(handles, EMOTIONS, loc="upper center", ncol=len(EMOTIONS), fontsize=8, frameon=False)
    fig.suptitle(Path(r.input).name, y=0.99, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0.12, 1, 0.93))
    out = Path(path)
    if out.suffix.lower() != ".png":  # the file written is a PNG: name it so (and say so)
        out = out.with_name(out.name + ".png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, format="png")
    except OSError as e:
        raise InputError(f"cannot write the timeline {out} ({e.strerror or e}); give --plot a writable path") from None
    finally:
        plt.close(fig)
    return out
