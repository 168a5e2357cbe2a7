"""Fit and measure the transcript quality score (emofuse.asr_quality); ``--write`` ships it.

    python benchmarks/asr_quality.py [--data ../shared/data] [--write]

Data (real speech of ../shared/data with known words, seeded samples; nothing is copied):

* ``en``: RAVDESS clips (two known sentences); ``pl``: nEMO clips (``data.tsv`` transcripts); ``tr``: TurEV-DB
  words (the word is in the file name; ASCII-folded before scoring);
* ``none``: sounds with no words to find, built here: nEMO clips played backwards (speech-like, no language),
  white / pink noise, chords of harmonic tones (music-like) and noise bursts at a laughing rate. Whatever
  Whisper writes for them is wrong;
* ``mixed``: other Polish and Turkish clips interleaved, as a mixed folder is packed (some clips are decoded
  in their neighbours' language);
* ``en-noisy``: other RAVDESS clips under a babble of nEMO speech at about 0 dB.

Every clip is transcribed as analysis does: packed with the other clips of its set into shared 30 s windows,
and (en, pl, tr, none) again alone for a share of the clips. A segment's label is 1 when its input's character
error rate is at most ``--cer-limit`` (0.3: the words are mostly right), 0 otherwise (always 0 for ``none``).
The logistic regression (balanced class weights) over :data:`emofuse.asr_quality.FEATURES` is measured leave
one language out (fit on two of en / pl / tr, test on the third; every set's clips belong to their language's
fold, the ``none`` sounds are spread over the three) and then fitted on all. Printed: per held-out language
AUC, accuracy and balanced accuracy at the threshold, the share flagged unreliable, the garbage kept, ECE;
pooled figures at several thresholds; the coefficients. Choices (threshold, C) are made on these held-out figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]
from speech_sets import SR, nemo_text, norm, turev_word  # noqa: E402


def nonspeech(rng: random.Random, reversed_speech: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Sounds without words: reversed speech, noise, tone chords, laughter-rate noise bursts (2-4 s each)."""
    g = np.random.default_rng(rng.randrange(1 << 30))
    out: list[np.ndarray] = [r[::-1].copy() for r in reversed_speech]
    while len(out) < n:
        k = len(out) % 4
        dur = g.uniform(2.0, 4.0)
        t = np.arange(int(dur * SR)) / SR
        if k == 0:  # white noise
            x = g.normal(0, 0.1, len(t))
        elif k == 1:  # pink-ish noise (integrated white noise, high-passed)
            x = np.cumsum(g.normal(0, 1, len(t)))
            x = x - np.convolve(x, np.ones(200) / 200, mode="same")
        elif k == 2:  # music: a sequence of harmonic chords
            x = np.zeros(len(t))
            for c0 in range(0, len(t), SR // 2):
                f0s = 110 * 2 ** (g.integers(0, 24, 3) / 12)
                seg = t[c0: c0 + SR // 2]
                x[c0: c0 + len(seg)] = sum(np.sin(2 * np.pi * f * h * seg) / h for f in f0s for h in (1, 2, 3))
        else:  # laughter-like: voiced noise bursts at ~5 Hz
            env = (np.sin(2 * np.pi * 5 * t) > 0.2).astype(float)
            x = g.normal(0, 1, len(t)) * env * np.sin(2 * np.pi * 220 * t) ** 2
        out.append((0.2 * x / (np.abs(x).max() + 1e-9)).astype(np.float32))
    return out[:n]


def load(data: Path, n: int, seed: int = 0) -> dict[str, list[tuple[np.ndarray, str | None, str]]]:
    """The sets: ``(audio, reference or None, language of the fold it belongs to)`` per clip."""
    from emofuse.corpora import prepare
    from emofuse.media import load_audio

    rng = random.Random(seed)
    sets: dict[str, list[tuple[np.ndarray, str | None, str]]] = {}
    rav = list(prepare("ravdess", data))
    rng.shuffle(rav)
    sets["en"] = [(load_audio(it.paths[0]), it.text, "en") for it in rav[:n]]
    text = nemo_text(data)
    nemo = sorted((data / "speech" / "nemo").glob("*.opus"))
    rng.shuffle(nemo)
    sets["pl"] = [(load_audio(p), text.get(p.stem), "pl") for p in nemo[:n]]
    tur = sorted((data / "speech" / "turevdb").glob("*/*.opus"))
    rng.shuffle(tur)
    sets["tr"] = [(load_audio(p), turev_word(p), "tr") for p in tur[:n]]
    rev = [load_audio(p) for p in nemo[n: n + n // 4]]
    sets["none"] = [(x, None, ("en", "pl", "tr")[i % 3]) for i, x in enumerate(nonspeech(rng, rev, n // 2))]
    # a mixed folder: Polish and Turkish clips interleaved, so some are decoded in their neighbours' language
    k = n // 2
    pl2 = [(load_audio(p), text.get(p.stem), "pl") for p in nemo[n + n // 4: n + n // 4 + k]]
    tr2 = [(load_audio(p), turev_word(p), "tr") for p in tur[n: n + k]]
    sets["mixed"] = [x for pair in zip(pl2, tr2) for x in pair]
    # English under a babble of Polish speech at 0 dB (noisy rooms): partly right, partly garbage
    g = np.random.default_rng(seed)
    noisy = []
    for it, p in zip(rav[n: n + k], nemo[-k:]):
        a, b = load_audio(it.paths[0]), load_audio(p)
        b = np.resize(b, len(a)) * (np.sqrt(np.mean(a ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-9))
        mix = a + b * g.uniform(0.7, 1.4)
        noisy.append(((mix / max(1.0, float(np.abs(mix).max()))).astype(np.float32), it.text, "en"))
    sets["en-noisy"] = noisy
    return sets


def collect(sets: dict, asr_model: str, alone_share: float, cer_limit: float) -> list[dict]:
    """One row per ASR segment: features, label, set, fold language, input index, mode."""
    import jiwer

    from emofuse.asr import ASROptions, WhisperASR

    class Recorder:  # scores nothing: the features are read from the utterances
        threshold = 0.0

        def score(self, feats: dict) -> float:
            return 1.0

    asr = WhisperASR(ASROptions(model=asr_model), quality=Recorder())
    rows = []
    for name, items in sets.items():
        audios = [a for a, _, _ in items]
        n_alone = int(round(alone_share * len(audios))) if name in ("en", "pl", "tr", "none") else 0
        results = [("packed", i, r) for i, r in enumerate(asr.transcribe_many(audios))]
        results += [("alone", i, asr.transcribe(audios[i])) for i in range(n_alone)]
        for mode, i, utts in results:
            _, ref, lang = items[i]
            hyp = " ".join(u.text for u in utts if u.source == "asr")
            if ref is None:
                label, cer = 0, float("nan")
            else:
                r, h = norm(ref, lang == "tr"), norm(hyp, lang == "tr")
                cer = float(jiwer.cer(r, h)) if h else 1.0
                label = int(cer <= cer_limit)
            for u in utts:
                if u.source == "asr" and u.decode is not None:
                    rows.append({"set": name, "fold": lang, "input": i, "mode": mode, "label": label, "cer": cer,
                                 "text": u.text, "language": u.language, **u.decode})
        print(f"  {name}: {len(items)} clips, {sum(1 for r in rows if r['set'] == name)} segments", flush=True)
    return rows


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean() for b in range(bins)
                     if (idx == b).any()))


def fit(X: np.ndarray, y: np.ndarray, C: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(0), X.std(0) + 1e-6
    # balanced: garbage segments are the minority, and missing them is what the score is for
    m = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit((X - mean) / scale, y)
    return mean, scale, m


def main() -> int:
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from emofuse.asr_quality import FEATURES, QualityModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--asr-model", default="whisper-base")
    ap.add_argument("--n", type=int, default=160, help="clips per language (half as many wordless sounds)")
    ap.add_argument("--alone-share", type=float, default=0.25, help="share of clips also transcribed alone")
    ap.add_argument("--cer-limit", type=float, default=0.3)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--C", type=float, default=0.1, help="inverse regularisation (0.1: best held-out AUC and ECE of 0.1, 1, 10)")
    ap.add_argument("--rows", type=Path, help="cache the segment rows here (JSON lines) and reuse them")
    ap.add_argument("--write", action="store_true", help="write src/emofuse/weights/asr-quality.json")
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = [json.loads(x) for x in a.rows.read_text().splitlines()] if a.rows and a.rows.exists() else []
    from emofuse.asr_quality import repetition

    for r in rows:  # text features are recomputed, so that a change to them needs no new transcription
        r["repetition"] = repetition(r["text"])
    have = {r["set"] for r in rows}  # sets already in the cache are not transcribed again
    sets = {k: v for k, v in load(a.data, a.n).items() if k not in have}
    if sets:
        print("transcribing " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()), flush=True)
        rows += collect(sets, a.asr_model, a.alone_share, a.cer_limit)
        if a.rows:
            a.rows.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    X = np.array([[r[f] for f in FEATURES] for r in rows], dtype=np.float64)
    y = np.array([r["label"] for r in rows])
    sets_ = np.array([r["set"] for r in rows])
    # wordless sounds are spread over the three folds (by input index)
    fold = np.array([r.get("fold") or (r["set"] if r["set"] != "none" else ("en", "pl", "tr")[r["input"] % 3])
                     for r in rows])
    names = sorted(set(sets_.tolist()))
    print(f"\n{len(rows)} segments; reliable (CER <= {a.cer_limit}) share per set: " + ", ".join(
        f"{s} {y[sets_ == s].mean():.2f} of {int((sets_ == s).sum())}" for s in names))
    print(f"\nLeave one language out (threshold {a.threshold}, C {a.C}):")
    print("| held out | segments | reliable | AUC | accuracy | balanced acc. | flagged unreliable | "
          "missed (garbage kept) | ECE |")
    print("|---|---|---|---|---|---|---|---|---|")
    pooled_p, pooled_y = [], []
    for held in ("en", "pl", "tr"):
        tr, te = fold != held, fold == held
        mean, scale, m = fit(X[tr], y[tr], a.C)
        p = m.predict_proba((X[te] - mean) / scale)[:, 1]
        pred = (p >= a.threshold).astype(int)
        auc = roc_auc_score(y[te], p) if 0 < y[te].mean() < 1 else float("nan")
        bad = y[te] == 0
        print(f"| {held} (+ a third of none) | {int(te.sum())} | {y[te].mean():.2f} | {auc:.3f} | "
              f"{(pred == y[te]).mean():.3f} | {balanced_accuracy_score(y[te], pred):.3f} | {1 - pred.mean():.2f} | "
              f"{(pred[bad] == 1).mean() if bad.any() else float('nan'):.2f} | {ece(p, y[te]):.3f} |")
        pooled_p.append(p)
        pooled_y.append(y[te])
    P, Y = np.concatenate(pooled_p), np.concatenate(pooled_y)
    print(f"pooled held-out: AUC {roc_auc_score(Y, P):.3f}, balanced accuracy "
          f"{balanced_accuracy_score(Y, (P >= a.threshold).astype(int)):.3f}, ECE {ece(P, Y):.3f}")
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        print(f"  threshold {t}: balanced accuracy {balanced_accuracy_score(Y, (P >= t).astype(int)):.3f}, "
              f"garbage kept {((P >= t) & (Y == 0)).sum() / max(1, (Y == 0).sum()):.2f}, "
              f"good text dropped {((P < t) & (Y == 1)).sum() / max(1, (Y == 1).sum()):.2f}")
    mean, scale, m = fit(X, y, a.C)
    print("\nfitted on all: " + ", ".join(f"{f} {c:+.2f}" for f, c in zip(FEATURES, m.coef_[0])) +
          f", intercept {m.intercept_[0]:+.2f}")
    model = QualityModel(tuple(mean.tolist()), tuple(scale.tolist()), tuple(m.coef_[0].tolist()),
                         float(m.intercept_[0]), a.threshold,
                         {"asr_model": a.asr_model, "cer_limit": a.cer_limit, "C": a.C, "fitted": str(date.today()),
                          "segments": len(rows), "sets": {s: int((sets_ == s).sum()) for s in names},
                          "loo_auc": round(float(roc_auc_score(Y, P)), 4),
                          "by": "benchmarks/asr_quality.py"})
    if a.write:
        out = ROOT / "src" / "emofuse" / "weights" / "asr-quality.json"
        out.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
        print(f"wrote {out}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
