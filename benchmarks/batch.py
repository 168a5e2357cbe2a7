"""Batch throughput on a folder of 40 mixed recordings (prints figures; not a test).

The folder: 28 short clips (2-3 s: nEMO Polish sentences and TurEV-DB Turkish words, ``speech_sets.short_folder``;
without the corpora, 2.5 s pieces of LibriVox English), 5 pieces of 8 s and two whole files of English speech
(44 s, 10 s), and 5 videos (the 60 s 720p benchmark clip, two 20 s talking-head clips, 4 s and 2 s clips): about
4.5 minutes of media, half of it with faces.

Each side runs in its own fresh process, models loaded inside the measured time (what a batch costs):

* ``analyze_many``: one process, one ``Analyzer`` (2 ASR threads), ``Analyzer.analyze_many`` over the folder;
* ``batch w1x2``: ``emofuse batch --workers 1`` (one worker of 2 threads);
* ``batch w2x1``: ``emofuse batch --workers 2`` (two workers of 1 thread);
* ``ray``: ``--engine ray`` with the faster of the two local splits, on a local Ray cluster it starts itself;
* ``ray running``: the same on a cluster already up (``ray start --head`` on this machine, ``--address auto``), as
  runs on a real cluster are.

Printed: wall, audio-hours per hour, batch / analyze_many throughput (target >= 0.9), Ray / local (target
>= 0.9, i.e. within 10 %), peak RSS of the largest worker (target <= 1.5 GB), and the projected machine-hours
for 10,000 hours of audio. Ratios within one run are what to compare (the machines are noisy).

    python benchmarks/batch.py [--data ../shared/data] [--rounds 1] [--no-ray] [--scale K] [--chunk N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]

from emofuse.batch import BatchOptions  # noqa: E402

MEDIA = ROOT / ".cache" / "media"
MODALITIES = "voice,face,text"


def build_folder(data: Path, out: Path, scale: int = 1) -> Path:
    import speech_sets

    from emofuse.media import load_audio

    folder = out / "clips"
    folder.mkdir(parents=True)
    speech = load_audio(MEDIA / "two_cities.wav")
    if (data / "speech" / "nemo").is_dir():
        for i, p in enumerate(speech_sets.short_folder(data, out / "turkish", n=28 * scale)):
            shutil.copy(p, folder / f"short{i:02d}{p.suffix}")
    else:
        for i in range(28 * scale):
            s = int((i * 1.37 % 41.0) * 16000)
            speech_sets.write_wav(folder / f"short{i:02d}.wav", speech[s:s + 40000])
    for i in range(5 * scale):
        s = int((2 + i * 8.3 % 34.0) * 16000)
        speech_sets.write_wav(folder / f"piece{i:02d}.wav", speech[s:s + 8 * 16000])
    if not (MEDIA / "bench_60s_720p.mp4").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_media.py"), "bench"], check=True)
    for name in ("two_cities.wav", "beckett.wav", "bench_60s_720p.mp4", "demo.mp4", "WolfgangLanger_Pexels.mp4",
                 "no_face.mp4", "single_face.mp4"):
        shutil.copy(MEDIA / name, folder / name)
    return folder


def worker(mode: str, folder: str, out: str, workers: int, chunk: int, address: str | None) -> dict[str, object]:
    t0 = time.perf_counter()
    from emofuse.pipeline import Analyzer, AnalyzerOptions

    opts = AnalyzerOptions(modalities=tuple(MODALITIES.split(",")))
    if mode == "analyze_many":
        from emofuse.media import expand_inputs

        a = Analyzer(opts)
        rs, first = [], None
        for r in a.iter_analyze(expand_inputs([folder])):  # what analyze_many does, timing the first result
            first = first or time.perf_counter() - t0
            rs.append(r)
        ok = [r for r in rs if not hasattr(r, "error")]
        return {"wall": time.perf_counter() - t0, "audio": sum(r.duration for r in ok), "inputs": len(rs),  # type: ignore[attr-defined]
                "failed": len(rs) - len(ok), "startup": first,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    from emofuse.batch import BatchOptions, run

    s = run([folder], opts, BatchOptions(out=Path(out), workers=workers, engine=mode, chunk=chunk,
                                                         address=address))
    return {"wall": time.perf_counter() - t0, "audio": s.audio_seconds, "inputs": s.done, "failed": s.failed,
            "startup": s.startup,
            "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if mode == "local" else None}


CHUNK: list[str] = []  # --chunk, passed on to the workers


def measure(mode: str, folder: Path, tmp: Path, workers: int = 1) -> dict[str, object]:
    out = tmp / f"out-{mode}-{workers}-{time.monotonic_ns()}"
    r = subprocess.run([sys.executable, __file__, "--worker", mode, "--folder", str(folder), "--out", str(out),
                        "--workers", str(workers), *CHUNK, *ADDRESS], check=True, capture_output=True, text=True,
                       env=os.environ | {"PYTHONWARNINGS": "ignore"})
    return json.loads(r.stdout.strip().splitlines()[-1])


def ray_running(folder: Path, tmp: Path, workers: int, rounds: int) -> dict[str, object]:
    """The Ray engine on a cluster that is already up (``ray start --head`` on this machine, then
    ``--address auto``): what a real cluster's runs cost, without booting one per run."""
    ray = str(Path(sys.executable).with_name("ray"))
    port = "6391"
    subprocess.run([ray, "start", "--head", "--port", port, "--num-cpus",
                    str(os.cpu_count()), "--include-dashboard=false", "--disable-usage-stats"], check=True,
                   capture_output=True)
    try:
        ADDRESS[:] = ["--address", "auto"]  # the cluster this machine runs
        return min((measure("ray", folder, tmp, workers) for _ in range(rounds)), key=lambda r: float(r["wall"]))  # type: ignore[arg-type]
    finally:
        ADDRESS.clear()
        subprocess.run([ray, "stop", "--force"], capture_output=True)


ADDRESS: list[str] = []  # --address of a running cluster, passed on to the ray worker


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--ray-vs-local", action="store_true",
                    help="only batch --workers 2 and Ray on a running cluster (e.g. with a large --scale)")
    ap.add_argument("--scale", type=int, default=1, help="K times the short clips and the pieces (other content)")
    ap.add_argument("--chunk", type=int, default=BatchOptions.chunk, help="inputs per chunk (BatchOptions.chunk)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--address", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.out, args.workers, args.chunk, args.address)))
        return 0
    CHUNK[:] = ["--chunk", str(args.chunk)]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        folder = build_folder(args.data, tmp, args.scale)
        n = len(list(folder.iterdir()))
        sides = {"analyze_many": ("analyze_many", 1), "batch w1x2": ("local", 1), "batch w2x1": ("local", 2)}
        if args.ray_vs_local:
            sides = {"batch w2x1": ("local", 2)}
        print(f"{n} inputs in {folder}")
        measure("analyze_many", folder, tmp)  # warm the page cache and the joined-weights cache
        runs: dict[str, list[dict[str, object]]] = {k: [] for k in sides}
        for _ in range(args.rounds):
            for k, (mode, w) in sides.items():
                runs[k].append(measure(mode, folder, tmp, w))
        best = {k: min(v, key=lambda r: float(r["wall"])) for k, v in runs.items()}  # type: ignore[arg-type]
        local = min((k for k in sides if k.startswith("batch")), key=lambda k: float(best[k]["wall"]))  # type: ignore[arg-type]
        if not args.no_ray:
            try:
                import ray.data  # noqa: F401

                if not args.ray_vs_local:
                    best["ray"] = min((measure("ray", folder, tmp, sides[local][1]) for _ in range(args.rounds)),
                                      key=lambda r: float(r["wall"]))  # type: ignore[arg-type]
                best["ray running"] = ray_running(folder, tmp, sides[local][1], args.rounds)
            except ImportError:
                print("ray is not installed (pip install 'emofuse[cluster]'): the ray side is skipped")
        audio = float(best[local]["audio"])  # type: ignore[arg-type]
        print(f"\n== {n} inputs, {audio:.0f} s of media ({audio / 60:.1f} min), modalities {MODALITIES}, "
              f"{os.cpu_count()} cores, rounds {args.rounds}; wall includes model loading")
        print(f"{'side':<14}{'wall s':>8}{'audio-h/h':>11}{'start-up s':>12}{'after it':>10}{'inputs':>8}"
              f"{'failed':>8}{'peak RSS MB':>13}")
        for k, r in best.items():
            rss = "" if r["rss_mb"] is None else f"{float(r['rss_mb']):.0f}"  # type: ignore[arg-type]
            w, s0 = float(r["wall"]), float(r["startup"] or 0)  # type: ignore[arg-type]
            print(f"{k:<14}{w:8.1f}{audio / w:11.1f}{s0:12.1f}{audio / (w - s0):10.1f}{r['inputs']:>8}"
                  f"{r['failed']:>8}{rss:>13}")
        print("(start-up: until the first input is written; after it: audio-h/h from then on)")
        lw = float(best[local]["wall"])  # type: ignore[arg-type]
        if "analyze_many" in best:
            base = float(best["analyze_many"]["wall"])  # type: ignore[arg-type]
            print(f"best local split: {local}; batch / analyze_many throughput {base / lw:.2f} (target >= 0.9)")
        if "ray" in best:
            rw, rs0 = float(best["ray"]["wall"]), float(best["ray"]["startup"] or 0)  # type: ignore[arg-type]
            ls0 = float(best[local]["startup"] or 0)  # type: ignore[arg-type]
            print(f"ray / local throughput {lw / rw:.2f} (target >= 0.9); after start-up {(lw - ls0) / (rw - rs0):.2f}")
        if "ray running" in best:
            rr = float(best["ray running"]["wall"])  # type: ignore[arg-type]
            print(f"ray on a running cluster / local throughput {lw / rr:.2f} (wall {rr - lw:+.1f} s)")
        rate = audio / lw  # audio-seconds per second of one machine
        wl = sides[local][1]
        print(f"per worker ({local}): {rate / wl * 3600 / 3600:.1f} audio-hours per hour, peak RSS "
              f"{float(best[local]['rss_mb'] or 0):.0f} MB (target <= 1536)")  # type: ignore[arg-type]
        for machines in (1, 10, 100):
            print(f"10,000 h of audio on {machines:>3} machine(s) like this: {10_000 / rate / machines:8.1f} h "
                  f"({10_000 / rate:.0f} machine-hours)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
