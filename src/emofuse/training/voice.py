"""Train and evaluate the voice expert: a linear head over Whisper-encoder embeddings (see
:mod:`emofuse.features.voice`) on RAVDESS speech and SAVEE.

    python -m emofuse.training.voice --data /work/shared/data --asr-model whisper-base --out src/emofuse/weights

Steps: (1) extract one embedding per clip (cached per speaker as .npz under ``.cache/features/``, keyed by
ASR model, embedding version and encoding variant; an interrupted run resumes); (2) evaluate on the
EmoBox speaker-independent folds (RAVDESS 6, SAVEE 4), choosing the regularisation C inside each fold on
held-out *training* speakers only, plus cross-corpus; (3) fit the shipped head on RAVDESS + SAVEE with
the C the fold protocol prefers and save it with its metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..features import voice as vf
from ..media import load_audio
from ..taxonomy import EMOTIONS

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SEED = 0
RAVDESS8 = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgusted", "08": "surprised"}
LICENCE = "trained on RAVDESS (CC BY-NC-SA 4.0) and SAVEE (research use): non-commercial research use"


def _default_cache() -> Path:
    """``.cache/features`` of a source checkout, else ``<emofuse cache>/features``."""
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").exists():
        return repo / ".cache" / "features"
    from ..store import cache_dir

    return cache_dir() / "features"


DEFAULT_CACHE = _default_cache()


@dataclass(frozen=True)
class Clip:
    name: str  # file stem, e.g. 03-01-05-02-01-01-01 or DC_a01
    corpus: str  # ravdess | savee
    speaker: str  # ravdess-01 .. ravdess-24, savee-DC ..
    label: str  # canonical (RAVDESS calm -> neutral)
    label8: str  # original corpus label (RAVDESS calm kept)
    path: Path


def list_clips(data: Path) -> list[Clip]:
    """All RAVDESS speech and SAVEE clips under ``data`` (the corpus loaders parse the names), in file order."""
    from ..corpora import prepare

    clips: list[Clip] = []
    for corpus in ("ravdess", "savee"):
        items = sorted((it for it in prepare(corpus, data) if it.label is not None), key=lambda it: it.paths[0])
        for it in items:
            # RAVDESS keeps its 8 classes (calm apart) for the EmoBox comparison; SAVEE has 7 already.
            label8 = RAVDESS8[it.id.split("-")[2]] if corpus == "ravdess" else it.label
            clips.append(Clip(it.id, corpus, str(it.speaker), str(it.label), label8, Path(it.paths[0])))
    return clips


def load_folds(data: Path, corpus: str) -> list[tuple[set[str], set[str]]]:
    """EmoBox folds as (train file stems, test file stems), in fold order."""
    from ..corpora import emobox_folds

    folds = emobox_folds(data / "speech" / f"{corpus}_folds")
    return [folds[k] for k in sorted(folds)]


# ----------------------------------------------------------------------------------------------- extraction

def cache_name(asr_model: str, packed: bool) -> str:
    return f"voice-{asr_model}-v{vf.VERSION}-{'packed' if packed else 'single'}"


def speaker_order(clips: Sequence[Clip], speaker: str) -> list[Clip]:
    """A speaker's clips in a fixed pseudo-random order. The corpora list files emotion by emotion; packing
    them in that order would put same-emotion clips in one window (the encoder attends across the whole
    window), leaking label context into every embedding."""
    own = [c for c in clips if c.speaker == speaker]
    rng = np.random.default_rng(zlib.crc32(speaker.encode()))
    return [own[i] for i in rng.permutation(len(own))]


def extract(clips: Sequence[Clip], asr_model: str, cache: Path, packed: bool = True,
            log: Callable[[str], None] = print) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Embeddings for ``clips`` (rows in the given order), cached per speaker; returns (views, timing) where
    views = {"speech": [n, 2 d], "clip": [n, 2 d]} (see :func:`emofuse.features.voice.embed_clip_views`).

    ``timing`` sums what each speaker's extraction cost when it was computed (stored in its cache file),
    so it stays meaningful when everything comes from the cache: clips, audio_s, decode_s, embed_s."""
    from ..asr import load_whisper

    d = cache / cache_name(asr_model, packed)
    d.mkdir(parents=True, exist_ok=True)
    speakers = sorted({c.speaker for c in clips})
    model = None
    rows: dict[str, dict[str, np.ndarray]] = {"speech": {}, "clip": {}}
    new = {"clips": 0.0, "audio_s": 0.0, "decode_s": 0.0, "embed_s": 0.0}
    rec = dict(new)
    for spk in speakers:
        f = d / f"{spk}.npz"
        own = speaker_order(clips, spk)
        if f.exists():
            z = np.load(f)
            names = [str(x) for x in z["names"]]
            if names == [c.name for c in own]:
                for v in rows:
                    rows[v] |= dict(zip(names, z[v]))
                rec["clips"] += len(names)
                for k in ("audio_s", "decode_s", "embed_s"):
                    rec[k] += float(z[k]) if k in z else float("nan")
                continue
        if model is None:
            model = load_whisper(asr_model)
        t0 = time.perf_counter()
        audio = [load_audio(c.path) for c in own]
        t1 = time.perf_counter()
        V = vf.embed_clip_views(model, audio, packed=packed)
        t2 = time.perf_counter()
        dur = sum(len(a) for a in audio) / vf.SAMPLE_RATE
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, names=np.array([c.name for c in own]), audio_s=dur, decode_s=t1 - t0, embed_s=t2 - t1, **V)
        tmp.replace(f)
        for v in rows:
            rows[v] |= dict(zip((c.name for c in own), V[v]))
        for k, v in (("clips", len(own)), ("audio_s", dur), ("decode_s", t1 - t0), ("embed_s", t2 - t1)):
            new[k] += v
            rec[k] += v
        log(f"  {spk}: {len(own)} clips, {dur:.0f} s audio, decode {t1 - t0:.1f} s, embed {t2 - t1:.1f} s "
            f"({len(own) / (t2 - t1):.1f} clips/s, RTF {(t2 - t1) / dur:.3f})")
    what = f"{asr_model} {'packed' if packed else 'per-clip'}"
    for label, t in (("extracted now", new), ("recorded in the cache (all clips)", rec)):
        if not t["clips"]:
            continue
        total = t["decode_s"] + t["embed_s"]
        log(f"{label}: {int(t['clips'])} clips ({t['audio_s'] / 60:.1f} min audio) with {what}: {total:.0f} s = "
            f"{t['clips'] / total:.2f} clips/s, RTF {total / t['audio_s']:.3f} (decode {t['decode_s']:.0f} s, "
            f"encode+pool {t['embed_s']:.0f} s = {t['clips'] / t['embed_s']:.2f} clips/s, RTF {t['embed_s'] / t['audio_s']:.3f})")
    views = {v: np.stack([r[c.name] for c in clips]).astype(np.float32) for v, r in rows.items()}
    return views, rec | {"extracted_now": new["clips"]}


# ----------------------------------------------------------------------------------------------- evaluation

def _fit(X: np.ndarray, y: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=SEED)
    clf.fit((X - mean) / scale, y)
    return lambda Z: clf.predict((Z - mean) / scale)


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {"UA": float(balanced_accuracy_score(y, p)), "WA": float(accuracy_score(y, p)),
            "F1": float(f1_score(y, p, average="macro"))}


def _inner_splits(groups: np.ndarray, idx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Validation splits of the training rows ``idx`` by speaker: leave-one-speaker-out for up to 5
    speakers, otherwise 5 speaker-disjoint groups (deterministic)."""
    spk = sorted(set(groups[idx]))
    k = min(5, len(spk))
    order = np.random.default_rng(SEED).permutation(len(spk))
    parts = [{spk[j] for j in order[i::k]} for i in range(k)]
    return [(idx[~np.isin(groups[idx], list(p))], idx[np.isin(groups[idx], list(p))]) for p in parts]


def _path_ua(Xtr: np.ndarray, ytr: np.ndarray, Xva: np.ndarray, yva: np.ndarray, grid: Sequence[float]) -> list[float]:
    """Validation UA along the C grid (ascending), each fit warm-started from the previous one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    mean, scale = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-6
    Ztr, Zva = (Xtr - mean) / scale, (Xva - mean) / scale
    clf = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=SEED, warm_start=True)
    ua = []
    for C in sorted(grid):
        clf.C = C
        clf.fit(Ztr, ytr)
        ua.append(float(balanced_accuracy_score(yva, clf.predict(Zva))))
    return [ua[sorted(grid).index(C)] for C in grid]


@dataclass(frozen=True)
class Views:
    """Training uses every clip once per ``train`` view (augmentation: the speech span and the whole cut
    clip, so that the head tolerates loose utterance boundaries); tests use ``test`` (speech spans, as
    analysis pools ASR segments) and report ``alt`` (whole cut clips) alongside."""

    train: tuple[np.ndarray, ...]
    test: np.ndarray
    alt: np.ndarray | None = None

    @classmethod
    def of(cls, views: dict[str, np.ndarray]) -> "Views":
        return cls((views["speech"], views["clip"]), views["speech"], views["clip"])

    def rows(self, idx: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.vstack([v[idx] for v in self.train]), np.tile(y[idx], len(self.train))


def select_C(V: Views, y: np.ndarray, groups: np.ndarray, idx: np.ndarray,
             always: np.ndarray | None = None, grid: Sequence[float] = C_GRID) -> tuple[float, list[float]]:
    """C with the best mean validation UA over speaker-disjoint splits of the rows ``idx``
    (``always``: extra rows that are always in training, e.g. the other corpus). Ties go to the smaller C."""
    extra = np.array([], dtype=int) if always is None else always
    curves = []
    for tr, va in _inner_splits(groups, idx):
        Xtr, ytr = V.rows(np.concatenate([tr, extra]), y)
        curves.append(_path_ua(Xtr, ytr, V.test[va], y[va], grid))
    curve = [float(v) for v in np.mean(curves, axis=0)]
    best = max(curve)
    return float(min(C for C, v in zip(grid, curve) if v >= best - 1e-9)), curve


def _test(V: Views, y: np.ndarray, tr: np.ndarray, te: np.ndarray, C: float) -> dict[str, float]:
    predict = _fit(*V.rows(tr, y), C)
    s = _scores(y[te], predict(V.test[te]))
    if V.alt is not None:
        s["UA_clip"] = _scores(y[te], predict(V.alt[te]))["UA"]
    return s


def run_folds(V: Views, y: np.ndarray, groups: np.ndarray, names: np.ndarray,
              folds: Sequence[tuple[set[str], set[str]]], always: np.ndarray | None = None,
              grid: Sequence[float] = C_GRID) -> dict[str, Any]:
    """Per fold: choose C on held-out training speakers, fit on the fold's training rows (+ ``always``),
    test once on the fold's test rows."""
    per_fold, curves = [], []
    for tr_names, te_names in folds:
        tr = np.flatnonzero(np.isin(names, list(tr_names)))
        te = np.flatnonzero(np.isin(names, list(te_names)))
        assert len(tr) == len(tr_names) and len(te) == len(te_names), "fold lists and files disagree"
        assert not set(groups[tr]) & set(groups[te]), "fold is not speaker-independent"
        C, curve = select_C(V, y, groups, tr, always, grid)
        trall = tr if always is None else np.concatenate([tr, always])
        per_fold.append(_test(V, y, trall, te, C) | {"C": C, "n_test": int(len(te))})
        curves.append(curve)
    out: dict[str, Any] = {"folds": per_fold, "curves": curves}
    for m in ("UA", "WA", "F1", "UA_clip"):
        if m in per_fold[0]:
            v = np.array([f[m] for f in per_fold])
            out[m], out[m + "_std"] = float(v.mean()), float(v.std())
    return out


def cross_corpus(V: Views, y: np.ndarray, groups: np.ndarray, src: np.ndarray, dst: np.ndarray,
                 grid: Sequence[float] = C_GRID) -> dict[str, Any]:
    C, _ = select_C(V, y, groups, src, None, grid)
    return _test(V, y, src, dst, C) | {"C": C}


def evaluate(V: Views, clips: Sequence[Clip], data: Path, full: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """All protocols (see the model card). Runs BLAS single-threaded: hundreds of small fits only
    oversubscribe the cores otherwise (about 10x slower on two shared cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _evaluate(V, clips, data, full, log)


def _evaluate(V: Views, clips: Sequence[Clip], data: Path, full: bool, log: Callable[[str], None]) -> dict[str, Any]:
    names = np.array([c.name for c in clips])
    groups = np.array([c.speaker for c in clips])
    y = np.array([c.label for c in clips])
    y8 = np.array([c.label8 for c in clips])
    rav = np.flatnonzero(np.array([c.corpus == "ravdess" for c in clips]))
    sav = np.flatnonzero(np.array([c.corpus == "savee" for c in clips]))
    rf, sf = load_folds(data, "ravdess"), load_folds(data, "savee")
    res: dict[str, Any] = {}
    t = time.perf_counter()
    res["ravdess"] = run_folds(V, y, groups, names, rf)
    res["savee"] = run_folds(V, y, groups, names, sf)
    log(f"  in-corpus folds: {time.perf_counter() - t:.0f} s")
    if full:
        res["ravdess8"] = run_folds(V, y8, groups, names, rf)
        res["joint_ravdess"] = run_folds(V, y, groups, names, rf, always=sav)
        res["joint_savee"] = run_folds(V, y, groups, names, sf, always=rav)
        res["ravdess_to_savee"] = cross_corpus(V, y, groups, rav, sav)
        res["savee_to_ravdess"] = cross_corpus(V, y, groups, sav, rav)
        log(f"  all protocols: {time.perf_counter() - t:.0f} s")
    return res


def shipped_C(res: dict[str, Any], grid: Sequence[float] = C_GRID) -> float:
    """C for the head trained on everything: the best mean inner-validation UA of the joint protocol
    (RAVDESS and SAVEE weighted equally), which trains on the same mixture as the shipped head."""
    keys = ("joint_ravdess", "joint_savee") if "joint_ravdess" in res else ("ravdess", "savee")
    curve = np.mean([np.mean(res[k]["curves"], axis=0) for k in keys], axis=0)
    return float(min(C for C, v in zip(grid, curve) if v >= curve.max() - 1e-9))


ROWS = (("ravdess", "RAVDESS 7-class (calm->neutral), 6 folds"),
        ("ravdess8", "RAVDESS 8-class (EmoBox labels), 6 folds"),
        ("savee", "SAVEE 7-class, 4 folds"),
        ("joint_ravdess", "RAVDESS folds, train + all SAVEE"),
        ("joint_savee", "SAVEE folds, train + all RAVDESS"),
        ("ravdess_to_savee", "cross-corpus RAVDESS -> SAVEE"),
        ("savee_to_ravdess", "cross-corpus SAVEE -> RAVDESS"))


def table(res: dict[str, Any], title: str) -> str:
    lines = [f"### {title}", "", "| protocol | UA % | WA % | macro F1 % | UA % whole clip | C per fold |",
             "|---|---|---|---|---|---|"]
    for key, label in ROWS:
        if key not in res:
            continue
        r = res[key]
        if "folds" in r:
            cs = ", ".join(f"{f['C']:g}" for f in r["folds"])
            lines.append(f"| {label} | {100 * r['UA']:.1f} ± {100 * r['UA_std']:.1f} | "
                         f"{100 * r['WA']:.1f} ± {100 * r['WA_std']:.1f} | {100 * r['F1']:.1f} ± {100 * r['F1_std']:.1f} | "
                         f"{100 * r.get('UA_clip', np.nan):.1f} ± {100 * r.get('UA_clip_std', np.nan):.1f} | {cs} |")
        else:
            lines.append(f"| {label} | {100 * r['UA']:.1f} | {100 * r['WA']:.1f} | {100 * r['F1']:.1f} | "
                         f"{100 * r.get('UA_clip', np.nan):.1f} | {r['C']:g} |")
    return "\n".join(lines)


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """The metrics stored in the head's metadata (no curves)."""
    out: dict[str, Any] = {}
    for key, _ in ROWS:
        if key in res:
            r = res[key]
            out[key] = {k: round(v, 4) for k, v in r.items() if k in ("UA", "WA", "F1", "UA_std", "WA_std", "F1_std", "UA_clip", "C")}
    return out


# ----------------------------------------------------------------------------------------------- main

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emofuse.training.voice", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (holds speech/)")
    ap.add_argument("--asr-model", default="whisper-base", help="whisper-base or whisper-tiny.en")
    ap.add_argument("--out", type=Path, default=None, help="folder for voice-<asr-model>.safetensors (omit: evaluate only)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="feature cache folder")
    ap.add_argument("--per-clip", action="store_true", help="encode each clip alone instead of packing 30 s windows")
    ap.add_argument("--compare", action="store_true",
                    help="also extract and evaluate the other encoding variant (in-corpus folds only)")
    ap.add_argument("--quick", action="store_true", help="in-corpus folds only")
    ap.add_argument("--report", type=Path, default=None, help="write the full results as JSON here")
    a = ap.parse_args(argv)

    t_start = time.perf_counter()
    clips = list_clips(a.data)
    print(f"{len(clips)} clips: {sum(c.corpus == 'ravdess' for c in clips)} RAVDESS, "
          f"{sum(c.corpus == 'savee' for c in clips)} SAVEE", flush=True)
    packed = not a.per_clip
    views, timing = extract(clips, a.asr_model, a.cache, packed=packed, log=lambda s: print(s, flush=True))
    V = Views.of(views)
    t_train = time.perf_counter()
    res = evaluate(V, clips, a.data, full=not a.quick, log=lambda s: print(s, flush=True))
    variant = "packed 30 s windows" if packed else "each clip encoded alone"
    print(table(res, f"{a.asr_model}, {variant} (speaker-independent, C chosen on held-out training speakers)"), flush=True)
    report: dict[str, Any] = {"asr_model": a.asr_model, "packed": packed, "results": res, "extraction": timing}
    if a.compare:
        views2, timing2 = extract(clips, a.asr_model, a.cache, packed=not packed, log=lambda s: print(s, flush=True))
        res2 = evaluate(Views.of(views2), clips, a.data, full=False, log=lambda s: print(s, flush=True))
        print(table(res2, f"{a.asr_model}, {'each clip encoded alone' if packed else 'packed 30 s windows'}"), flush=True)
        report["other_variant"] = {"packed": not packed, "results": res2, "extraction": timing2}
    if a.out is not None:
        from ..store import COMPONENTS
        from .linear import fit_head

        C = shipped_C(res)
        t_fit = time.perf_counter()
        y = np.array([c.label for c in clips])
        meta = {
            "kind": "voice",
            "feature": {"extractor": "whisper-encoder", "asr_model": a.asr_model,
                        "model_sha256": COMPONENTS[a.asr_model].sha256 if a.asr_model in COMPONENTS else None,
                        "pooling": vf.POOLING, "frame_seconds": vf.FRAME_SECONDS, "dim": int(V.test.shape[1]),
                        "version": vf.VERSION, "packed_windows": packed, "vad_pad_s": vf.VAD_PAD_S,
                        "span": f"utterance speech +- {vf.SPAN_PAD_S} s (trained on it and on the whole VAD-cut clip)"},
            "training": {"corpora": ["RAVDESS speech (calm->neutral)", "SAVEE"], "n": int(len(clips)), "rows": "each clip twice: speech span and whole VAD-cut clip",
                         "n_per_class": {e: int((y == e).sum()) for e in EMOTIONS}, "C": C,
                         "command": "python -m emofuse.training.voice " + " ".join(sys.argv[1:] if argv is None else argv),
                         "seconds": None, "extraction_seconds": round(timing["decode_s"] + timing["embed_s"], 1),
                         "extraction_rtf": round((timing["decode_s"] + timing["embed_s"]) / timing["audio_s"], 4)},
            "metrics": summary(res),
            "licence": LICENCE,
        }
        from threadpoolctl import threadpool_limits

        Xall, yall = V.rows(np.arange(len(clips)), y)
        with threadpool_limits(1):
            head = fit_head(Xall, list(yall), EMOTIONS, C, meta, seed=SEED)
        head.meta["training"]["seconds"] = round(time.perf_counter() - t_train, 1)
        head.meta["training"]["fit_seconds"] = round(time.perf_counter() - t_fit, 2)
        a.out.mkdir(parents=True, exist_ok=True)
        path = a.out / f"voice-{a.asr_model}.safetensors"
        head.save(path)
        path.chmod(0o644)  # safetensors writes 0600; the file ships in the package
        acc = float(np.mean(np.array(EMOTIONS)[head.predict_proba(V.test).argmax(1)] == y))
        print(f"saved {path} ({path.stat().st_size / 1024:.0f} KiB), C={C:g}, training accuracy {100 * acc:.1f} %")
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s (evaluation + fit {time.perf_counter() - t_train:.0f} s)")
    if a.report:
        a.report.parent.mkdir(parents=True, exist_ok=True)
        a.report.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
