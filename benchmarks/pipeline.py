"""Pipeline speed and memory on three recordings (prints figures; not a test).

* ``english``: a 60 s, 1280x720, 30 fps talking-head clip (LibriVox English speech, ``scripts/make_media.py``);
* ``hard``: 60 s of speech Whisper-base handles badly, as one WAV (``speech_sets.hard_clip``: 120 TurEV-DB
  Turkish words with 0.25 s gaps over a babble of nEMO Polish sentences at -6 dB);
* ``folder``: a folder of 100 short clips, 2-3 s each (``speech_sets.short_folder``: 50 nEMO Polish sentences
  and 50 Turkish clips of two or three TurEV-DB words), analysed in one call as ``emofuse analyze DIR`` does.

For each: the whole analysis (``Analyzer.analyze`` / ``analyze_many``), emofuse's ASR alone (``WhisperASR``:
VAD, packing, one encoder pass per window, the decoding budget) and, for reference, faster-whisper's own
``transcribe`` as emofuse called it before the decoding budget (one file at a time, VAD, greedy with
faster-whisper's temperature-fallback ladder). Each side runs in its own fresh process, alternately,
``--rounds`` times (the faster-whisper reference once); the minimum of each is reported (the machines are
noisy: compare ratios within a run).
Also printed for ``english``: cold start (import + model load) and peak RSS.

Targets: RTF <= 0.15 on all three with whisper-base; english whole / ASR alone <= 1.3; cold start <= 3 s;
peak RSS <= 1.5 GB.

    python benchmarks/pipeline.py [--scenes english,hard,folder] [--asr-model whisper-base] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]
CLIP = ROOT / ".cache" / "media" / "bench_60s_720p.mp4"
SCENES = ("english", "hard", "folder")


def _inputs(target: str) -> list[str]:
    p = Path(target)
    return sorted(str(x) for x in p.iterdir()) if p.is_dir() else [target]


def worker_full(target: str, asr_model: str, streams: int, beside_faces: int) -> dict[str, object]:
    t0 = time.perf_counter()
    import emofuse
    from emofuse.pipeline import Analyzer, AnalyzerOptions

    t_import = time.perf_counter() - t0
    a = Analyzer(AnalyzerOptions(asr_model=asr_model, asr_streams=streams, asr_streams_beside_faces=beside_faces))
    cold = time.perf_counter() - t0
    files = _inputs(target)
    t = time.perf_counter()
    rs = a.analyze_many(files) if len(files) > 1 else [a.analyze(files[0])]
    wall = time.perf_counter() - t
    ok = [r for r in rs if not hasattr(r, "error")]
    segs = [s for r in ok for s in r.segments]  # type: ignore[attr-defined]
    return {"import": t_import, "cold_start": cold, "load": a.load_seconds, "wall": wall,
            "duration": sum(r.duration or 0 for r in ok), "stages": ok[0].timings if len(ok) == 1 else {},  # type: ignore[attr-defined]
            "segments": len(segs), "errors": len(rs) - len(ok), "version": emofuse.__version__,
            "with_voice": sum(1 for r in ok if any("voice" in s.modalities for s in r.segments)) / max(1, len(ok)),  # type: ignore[attr-defined]
            "unreliable": sum(1 for s in segs if s.transcript is not None and s.text and not s.transcript.reliable),
            "vad": sum(1 for s in segs if s.transcript is not None and s.transcript.boundaries == "vad"),
            "modalities": sorted({m for s in segs for m in s.modalities}),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _audio(files: list[str]) -> list[np.ndarray]:
    from emofuse.media import decode_audio, probe

    return [decode_audio(probe(f))[0] for f in files]


def worker_asr(target: str, asr_model: str, streams: int, beside_faces: int) -> dict[str, object]:
    """emofuse's ASR alone (the windows of analyze / analyze_many)."""
    from emofuse.asr import ASROptions, WhisperASR

    audios = _audio(_inputs(target))
    asr = WhisperASR(ASROptions(model=asr_model, streams=streams))
    t = time.perf_counter()
    utts = asr.transcribe_many(audios)
    return {"wall": time.perf_counter() - t, "segments": sum(len(u) for u in utts),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker_before(target: str, asr_model: str, streams: int, beside_faces: int) -> dict[str, object]:
    """faster-whisper's transcribe, one file at a time, as emofuse called it before the decoding budget."""
    from faster_whisper import WhisperModel

    from emofuse.asr import model_dir

    audios = _audio(_inputs(target))
    m = WhisperModel(str(model_dir(asr_model)), device="cpu", compute_type="int8", cpu_threads=2)
    t = time.perf_counter()
    n = 0
    for a in audios:
        segs, _info = m.transcribe(a, beam_size=1, vad_filter=True, condition_on_previous_text=False)
        n += len(list(segs))
    return {"wall": time.perf_counter() - t, "segments": n,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


WORKERS = {"full": worker_full, "asr": worker_asr, "before": worker_before}


STREAMS: list[str] = []  # --streams / --streams-beside-faces, passed on to the workers


def run(mode: str, target: Path, asr_model: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--worker", mode, "--target", str(target), "--asr-model",
                          asr_model, *STREAMS], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def target_of(scene: str, data: Path, tmp: Path) -> Path:
    import speech_sets

    if scene == "english":
        if not CLIP.exists():
            subprocess.run([sys.executable, str(ROOT / "scripts" / "make_media.py"), "bench"], check=True)
        return CLIP
    if scene == "hard":
        return speech_sets.write_wav(tmp / "hard_60s.wav", speech_sets.hard_clip(data))
    folder = tmp / "short_clips"
    for i, p in enumerate(speech_sets.short_folder(data, tmp / "turkish")):
        dst = folder / f"{i:03d}_{p.name}"
        folder.mkdir(exist_ok=True)
        dst.symlink_to(p)  # nEMO files stay where they are; the Turkish clips were written to tmp
    return folder


def _walls(runs: list[dict[str, object]]) -> str:
    return ", ".join(f"{float(r['wall']):.2f}" for r in runs)  # type: ignore[arg-type]


def bench(scene: str, target: Path, asr_model: str, rounds: int, before: bool = True) -> dict[str, float]:
    run("full", target, asr_model)  # warm the page cache and the joined-weights cache
    sides: dict[str, list[dict[str, object]]] = {"full": [], "asr": [], **({"before": []} if before else {})}
    for k in range(rounds):
        for mode in sides:
            if mode != "before" or k == 0:  # the reference is slow on hard speech (RTF 1-3): one run
                sides[mode].append(run(mode, target, asr_model))
    best = min(sides["full"], key=lambda r: r["wall"])  # type: ignore[arg-type,return-value]
    wall, dur = float(best["wall"]), float(best["duration"])  # type: ignore[arg-type]
    asr = min(float(r["wall"]) for r in sides["asr"])  # type: ignore[arg-type]
    before = min((float(r["wall"]) for r in sides.get("before", [])), default=float("nan"))  # type: ignore[arg-type]
    n = len(_inputs(str(target)))
    print(f"\n== {scene}: {target.name} ({n} input{'s' if n > 1 else ''}, {dur:.1f} s of media)   "
          f"ASR model: {asr_model}   rounds: {rounds}")
    print(f"segments: {best['segments']} ({best['vad']} with VAD boundaries, {best['unreliable']} with an unreliable "
          f"transcript)   inputs with a voice answer: {float(best['with_voice']):.0%}   errors: {best['errors']}   "  # type: ignore[arg-type]
          f"modalities: {', '.join(best['modalities'])}")  # type: ignore[arg-type]
    if best["stages"]:
        print("stage wall times (s, best full run; face runs on a second thread during ASR):")
        for k, v in best["stages"].items():  # type: ignore[union-attr]
            print(f"  {k:<13} {v:7.2f}")
    print(f"whole analysis             {wall:7.2f} s   RTF {wall / dur:.3f}   target <= 0.15   (all runs: "
          f"{_walls(sides['full'])})")
    print(f"ASR alone (emofuse)        {asr:7.2f} s   RTF {asr / dur:.3f}   (all runs: {_walls(sides['asr'])})")
    if before == before:  # not NaN: measured
        print(f"ASR before (faster-whisper {before:7.2f} s   RTF {before / dur:.3f}   (all runs: "
              f"{_walls(sides['before'])})")
    print(f"whole / ASR alone          {wall / asr:7.2f}" + ("     target <= 1.3" if scene == "english" else ""))
    if scene == "english":
        cold = min(float(r["cold_start"]) for r in sides["full"])  # type: ignore[arg-type]
        imp = min(float(r["import"]) for r in sides["full"])  # type: ignore[arg-type]
        print(f"cold start                 {cold:7.2f} s   (import emofuse {imp:.2f} s + model load)   target <= 3")
        rss = max(float(r["rss_mb"]) for r in sides["full"])  # type: ignore[arg-type]
        rss_asr = max(float(r["rss_mb"]) for r in sides["asr"])  # type: ignore[arg-type]
        print(f"peak RSS                   {rss:7.0f} MB  (ASR alone: {rss_asr:.0f} MB)   target <= 1536")
    return {"rtf": wall / dur, "asr_rtf": asr / dur, "before_rtf": before / dur, "ratio": wall / asr}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", default=",".join(SCENES), help="comma-separated: " + ", ".join(SCENES))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="corpora for hard / folder")
    ap.add_argument("--asr-model", default="whisper-base")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-before", action="store_true", help="skip the faster-whisper reference (slow on hard speech)")
    ap.add_argument("--streams", type=int, default=2, help="ASR windows decoded at once (AnalyzerOptions.asr_streams)")
    ap.add_argument("--streams-beside-faces", type=int, default=1,
                    help="... while a video's faces are analysed (AnalyzerOptions.asr_streams_beside_faces)")
    ap.add_argument("--worker", choices=sorted(WORKERS))
    ap.add_argument("--target", type=Path, default=CLIP, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](str(args.target), args.asr_model, args.streams,
                                              args.streams_beside_faces)))
        return 0
    STREAMS[:] = ["--streams", str(args.streams), "--streams-beside-faces", str(args.streams_beside_faces)]
    scenes = args.scenes.split(",")
    if bad := [s for s in scenes if s not in SCENES]:
        ap.error(f"unknown scenes {bad}; choose from {', '.join(SCENES)}")
    if any(s != "english" for s in scenes) and not (args.data / "speech" / "nemo").is_dir():
        ap.error(f"the hard and folder scenes need the speech corpora under {args.data / 'speech'} (--data)")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scene in scenes:
            rows[scene] = bench(scene, target_of(scene, args.data, Path(tmp)), args.asr_model, args.rounds,
                                not args.no_before)
    print("\n| scene | whole RTF | ASR alone RTF | before RTF | whole / ASR alone |\n|---|---|---|---|---|")
    for s, r in rows.items():
        print(f"| {s} | {r['rtf']:.3f} | {r['asr_rtf']:.3f} | {r['before_rtf']:.3f} | {r['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
