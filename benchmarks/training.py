"""Feature-extraction throughput per extractor and training time per expert (prints figures; not a test).

Extraction: each registered extractor embeds a fixed, seeded sample of real items (RAVDESS + SAVEE
clips for voice extractors, MELD dev sentences for text extractors) into an empty temporary cache,
with 1 and then 2 worker processes; items/s (and the real-time factor for audio) are printed. Model
loading is included, as a user running ``emofuse extract`` pays it.

Training: the reference configs and the ship configs (which train the heads ``analyze`` uses) run end to
end through ``emofuse train`` from the warm feature cache (``emofuse.store.feature_cache_dir()``; the first
run fills it, untimed), and their wall time, split count and headline figure are printed.

    python benchmarks/training.py [--data ../shared/data] [--n-voice 96] [--n-text 1024] [--skip-train]

The machines are noisy and shared: compare figures measured in one run; single timings drift.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("voice_ravdess_kfold.toml", "voice_loco.toml", "text_meld_holdout.toml", "ship_voice_whisper_base.toml",
           "ship_voice_whisper_tiny_en.toml", "ship_text_minilm_l6.toml", "ship_text_e5_small.toml")


def sample(items: list, n: int, seed: int = 0) -> list:
    if len(items) <= n:
        return items
    idx = np.sort(np.random.default_rng(seed).permutation(len(items))[:n])
    return [items[i] for i in idx]


def bench_extract(data: Path, n_voice: int, n_text: int, workers: tuple[int, ...]) -> list[dict]:
    from emofuse.corpora import prepare
    from emofuse.extract import extract
    from emofuse.extractors import EXTRACTORS

    voice = sample([it for c in ("ravdess", "savee") for it in prepare(c, data)], n_voice)
    text = sample([it for it in prepare("meld", data) if it.split == "dev"], n_text)
    rows = []
    for name, ex in EXTRACTORS.items():
        items = voice if ex.modality == "voice" else text
        for w in workers:
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                rep = extract(items, name, Path(tmp), workers=w, progress=False)
                wall = time.perf_counter() - t
            row = {"extractor": name, "workers": w, "items": len(items), "failed": rep.n_failed,
                   "wall_s": round(wall, 2), "items_per_s": round(len(items) / wall, 2),
                   "rtf": round(wall / rep.audio_seconds, 4) if rep.audio_seconds else None}
            rows.append(row)
            print(f"  {name:24s} workers={w}  {row['items']:5d} items  {row['wall_s']:7.1f} s  "
                  f"{row['items_per_s']:7.1f} items/s" + (f"  RTF {row['rtf']:.4f}" if row["rtf"] else ""), flush=True)
    return rows


def bench_train(data: Path, out: Path, names: tuple[str, ...] = CONFIGS) -> list[dict]:
    from dataclasses import replace

    from emofuse.training.config import load_config
    from emofuse.training.run import run

    rows = []
    for name in names:
        cfg = load_config(ROOT / "configs" / name)
        cfg = replace(cfg, out=str(out / cfg.name), data=replace(cfg.data, root=str(data)))
        run(cfg, workers=2, progress=False)  # fills the cache if needed (not timed)
        t = time.perf_counter()
        r = run(cfg, workers=2, progress=False)
        wall = time.perf_counter() - t
        rows.append({"config": name, "splits": len(r["folds"]), "items": r["n_items"], "wall_s": round(wall, 2),
                     "UA": r["summary"]["UA"]["text"], "evaluated_on": r["evaluated_on"]})
        print(f"  {name:26s} {len(r['folds'])} split(s)  {r['n_items']:6d} items  {wall:7.1f} s  "
              f"UA {r['summary']['UA']['text']} ({r['evaluated_on']})", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--n-voice", type=int, default=96)
    ap.add_argument("--n-text", type=int, default=1024)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip-extract", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), help="config file names under configs/")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    if not a.data.is_dir():
        print(f"corpora not found at {a.data}; pass --data", file=sys.stderr)
        return 2
    res: dict = {}
    if not a.skip_extract:
        print("extraction throughput (cold cache, model loading included):")
        res["extract"] = bench_extract(a.data, a.n_voice, a.n_text, tuple(a.workers))
    if not a.skip_train:
        print("training time per expert config (warm feature cache; linear heads, C chosen on validation):")
        with tempfile.TemporaryDirectory() as tmp:
            res["train"] = bench_train(a.data, Path(tmp), tuple(a.configs))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
