"""Pipeline speed and memory on a 60 s, 1280x720, 30 fps talking-head clip (prints figures; not a test).

Prints wall time per stage, the real-time factor, peak RSS, cold start (import + model load, in a
fresh process), and the ratio of the whole analysis to ASR alone (faster-whisper on the same audio
with the same weights and decoding settings: Silero VAD, greedy). Each side runs in its own fresh
process, alternately, `--rounds` times; the minimum of each is reported (the machines are noisy).

Targets: whole <= 1.3 x ASR alone, RTF <= 0.15 with whisper-base, cold start <= 3 s,
peak RSS <= 1.5 GB.

    python benchmarks/pipeline.py [--asr-model whisper-base] [--rounds 2] [--clip PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / ".cache" / "media" / "bench_60s_720p.mp4"


def worker_full(clip: str, asr_model: str) -> dict[str, object]:
    t0 = time.perf_counter()
    import emofuse
    from emofuse.pipeline import Analyzer, AnalyzerOptions

    t_import = time.perf_counter() - t0
    a = Analyzer(AnalyzerOptions(asr_model=asr_model))
    cold = time.perf_counter() - t0
    t = time.perf_counter()
    r = a.analyze(clip)
    wall = time.perf_counter() - t
    return {"import": t_import, "cold_start": cold, "load": a.load_seconds, "wall": wall, "duration": r.duration,
            "stages": r.timings, "segments": len(r.segments), "version": emofuse.__version__,
            "modalities": r.summary["modalities"], "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker_asr(clip: str, asr_model: str) -> dict[str, object]:
    from faster_whisper import WhisperModel

    from emofuse.asr import model_dir
    from emofuse.media import decode_audio, probe

    audio, _ = decode_audio(probe(clip))
    m = WhisperModel(str(model_dir(asr_model)), device="cpu", compute_type="int8", cpu_threads=2)
    t = time.perf_counter()
    segs, _info = m.transcribe(audio, beam_size=1, vad_filter=True, condition_on_previous_text=False)
    n = len(list(segs))
    return {"wall": time.perf_counter() - t, "segments": n,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(mode: str, clip: Path, asr_model: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--worker", mode, "--clip", str(clip), "--asr-model", asr_model],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _walls(runs: list[dict[str, object]]) -> str:
    return ", ".join(f"{float(r['wall']):.2f}" for r in runs)  # type: ignore[arg-type]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument("--asr-model", default="whisper-base")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker", choices=["full", "asr"])
    args = ap.parse_args()
    if args.worker:
        fn = worker_full if args.worker == "full" else worker_asr
        print(json.dumps(fn(str(args.clip), args.asr_model)))
        return 0
    if not args.clip.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_media.py"), "bench"], check=True)
    run("full", args.clip, args.asr_model)  # warm the page cache and the joined-weights cache
    fulls, asrs = [], []
    for _ in range(args.rounds):
        fulls.append(run("full", args.clip, args.asr_model))
        asrs.append(run("asr", args.clip, args.asr_model))
    best = min(fulls, key=lambda r: r["wall"])  # type: ignore[arg-type,return-value]
    asr = min(float(r["wall"]) for r in asrs)  # type: ignore[arg-type]
    wall, dur = float(best["wall"]), float(best["duration"])  # type: ignore[arg-type]
    print(f"clip: {args.clip.name}  ({dur:.1f} s, 1280x720 30 fps)   ASR model: {args.asr_model}   rounds: {args.rounds}")
    print(f"segments: {best['segments']}  modalities: {', '.join(best['modalities'])}")  # type: ignore[arg-type]
    print("stage wall times (s, best full run; face runs on a second thread during ASR):")
    for k, v in best["stages"].items():  # type: ignore[union-attr]
        print(f"  {k:<13} {v:7.2f}")
    print(f"whole analysis      {wall:7.2f} s   (all runs: {_walls(fulls)})")
    print(f"ASR alone           {asr:7.2f} s   (all runs: {_walls(asrs)})")
    print(f"whole / ASR alone   {wall / asr:7.2f}     target <= 1.3")
    print(f"real-time factor    {wall / dur:7.3f}     target <= 0.15")
    cold = min(float(r["cold_start"]) for r in fulls)  # type: ignore[arg-type]
    imp = min(float(r["import"]) for r in fulls)  # type: ignore[arg-type]
    print(f"cold start          {cold:7.2f} s   (import emofuse {imp:.2f} s + model load)   target <= 3")
    rss = max(float(r["rss_mb"]) for r in fulls)  # type: ignore[arg-type]
    rss_asr = max(float(r["rss_mb"]) for r in asrs)  # type: ignore[arg-type]
    print(f"peak RSS            {rss:7.0f} MB  (ASR alone: {rss_asr:.0f} MB)   target <= 1536")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
