"""Windows decoded one at a time against several at once (``ASROptions.streams``; prints figures).

    python benchmarks/asr_streams.py [--data ../shared/data] [--rounds 2]

Greedy decoding runs one small matrix product per token, which keeps two cores only half busy; with two
CTranslate2 replicas two windows are encoded and decoded at once. Measured in one process, alternating the
settings (timings on these machines vary run to run; the ratio within a round is the stable figure): a lone
window (one 3 s clip, the latency of a single short input) and the 100-clip folder of ``speech_sets`` (about
ten shared windows), plus the resident memory each model adds and whether the transcripts are the same.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    from emofuse.asr import ASROptions, WhisperASR
    from emofuse.media import load_audio
    from speech_sets import short_folder

    with tempfile.TemporaryDirectory() as tmp:
        audios = [load_audio(p) for p in short_folder(a.data, Path(tmp))]
    secs = sum(len(x) for x in audios) / 16000
    texts: dict[int, list[str]] = {}
    rows: dict[int, list[tuple[float, float]]] = {s: [] for s in a.streams}
    mem: dict[int, float] = {}
    del WhisperASR(ASROptions(streams=1))  # imports and VAD first: the RSS figures below are the models'
    for r in range(a.rounds):
        for s in a.streams:
            before = _rss_mb()
            asr = WhisperASR(ASROptions(streams=s))
            mem.setdefault(s, _rss_mb() - before)
            asr.transcribe(audios[0])  # warm up
            t = time.perf_counter()
            asr.transcribe(audios[1])
            lone = time.perf_counter() - t
            t = time.perf_counter()
            out = asr.transcribe_many(audios)
            rows[s].append((lone, time.perf_counter() - t))
            texts.setdefault(s, [" ".join(u.text for u in x) for x in out])
            print(f"round {r + 1} streams={s}: lone window {lone:.2f} s, folder {rows[s][-1][1]:.1f} s", flush=True)
            del asr
    ref = a.streams[0]
    print(f"\n100 short clips, {secs:.1f} s of speech; model RSS added: "
          + ", ".join(f"streams={s} {mem[s]:.0f} MB" for s in a.streams))
    print("| streams | lone window, s | folder, s | folder RTF | folder time / streams=%d | same text |" % ref)
    print("|---|---|---|---|---|---|")
    for s in a.streams:
        lone = min(x[0] for x in rows[s])
        folder = min(x[1] for x in rows[s])
        ratio = [x[1] / y[1] for x, y in zip(rows[s], rows[ref])]
        same = sum(p == q for p, q in zip(texts[s], texts[ref])) / len(audios)
        print(f"| {s} | {lone:.2f} | {folder:.1f} | {folder / secs:.3f} | "
              + " / ".join(f"{x:.2f}" for x in ratio) + f" | {same:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
