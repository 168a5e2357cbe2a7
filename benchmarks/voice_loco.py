"""Voice expert across corpora: leave-one-corpus-out over RAVDESS, SAVEE, nEMO and TurEV-DB (prints figures).

    python benchmarks/voice_loco.py [--data ../shared/data] [--extractor voice-whisper-base] [--variants a,b]

Protocol (what a user's unseen recordings predict): per held-out corpus, train on the other three, choose
C on held-out speakers of those three (mean of their per-corpus UA), refit on training + validation
speakers, and test once on the held-out corpus, scored on its own classes (UA = mean recall; "all" = over
every class the head knows, as an analysis answers). Mean ± std over the four held-out corpora. Each
variant changes one thing against ``base``:

* ``base``: the shipped recipe, mean + std of the last Whisper encoder layer, logistic regression with
  balanced classes (each item counts once, so nEMO, with 4,481 clips, outweighs SAVEE's 480);
* ``balanced``: every training corpus weighs the same in the fit (item weight 1 / its corpus's size);
* ``corpus_stats``: each training corpus z-scored with its own statistics (its recording conditions taken
  out of the fit), the held-out corpus with the mean of those statistics (all an analysis could know);
* ``recording``: z-scoring over a recording's utterances, simulated as 8 clips of one speaker (mixed
  emotions, seeded) analysed together, with the corpus-free fallback (no normalisation) left to clips that
  are alone; runs at analysis time;
* ``speaker_ref``: z-scoring over all clips of each speaker, test speakers included: transductive, a
  reference for what normalisation could win, not an option;
* ``mlp``: a one-hidden-layer MLP (scikit-learn, early-stopped on 10 % of its training rows) instead of
  the logistic regression;
* ``clip_view``: the ``-clip`` pooling of the training clips joins the fit (as the shipped head does);
* ``prosody``: 15 prosodic statistics appended (WORLD's DIO pitch tracker, pyworld: log-F0 mean, std,
  percentiles, range, slope and mean absolute change over voiced 10 ms frames, the voiced share and the
  voiced-stretch onsets per second; frame energy mean, std, percentiles, range), computed here and cached
  under ``--prosody-cache``; ``prosody_recording``: the same, with the ``recording`` z-scoring;
* ``augment``: one augmented copy of every training clip joins the fit (see :func:`augment`: speed, gain,
  room, noise, telephone band; encoded with the same packing, cached under ``--augment-cache``); selection
  and test on clean audio;
* ``attention``: attentive statistics pooling over the 0.5 s chunk sequence learned with a linear output
  (torch; :func:`attention_head`), instead of fixed mean + std; kept epoch chosen on the validation speakers
  (trained on the training speakers only, no refit);
* ``chunk_stats``: statistics pooling over the 0.5 s chunk sequence (``voice-whisper-base-seq``, the same
  encoder pass): the std, max and mean absolute change of the chunk means appended (how the voice moves
  over the utterance, which frame mean + std cannot see).

Also printed: the confusion matrix of each held-out corpus for the best variant and the expected
calibration error (15 bins) of ``base`` before and after temperature scaling fitted on the validation
speakers, on the validation speakers themselves and on the held-out corpus.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

CORPORA = ("ravdess", "savee", "nemo", "turevdb")
VARIANTS = ("base", "balanced", "corpus_stats", "recording", "speaker_ref", "mlp", "clip_view", "prosody", "prosody_recording",
            "chunk_stats", "augment", "attention")
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def group_z(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = X.copy()
    for g in np.unique(groups):
        k = groups == g
        if k.sum() > 1:
            out[k] = (X[k] - X[k].mean(0)) / (X[k].std(0) + 1e-6)
    return out


def recordings(speakers: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A simulated recording id per row: each speaker's clips shuffled (seeded) and cut into groups of ``size``."""
    rng = np.random.default_rng(seed)
    rec = np.empty(len(speakers), dtype=object)
    for s in np.unique(speakers):
        rows = rng.permutation(np.flatnonzero(speakers == s))
        for j, r in enumerate(rows):
            rec[r] = f"{s}#{j // size}"
    return rec


def prosody(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """15 prosodic statistics of a clip (see the module docstring)."""
    import pyworld

    x = audio.astype(np.float64)
    f0, _ = pyworld.dio(x, sr, f0_floor=60.0, f0_ceil=600.0, frame_period=10.0)
    v = f0 > 0
    lf = np.log(f0[v]) if v.sum() >= 3 else np.zeros(3)
    t = np.flatnonzero(v) * 0.01 if v.sum() >= 3 else np.arange(3.0)
    slope = float(np.polyfit(t, lf, 1)[0]) if np.ptp(t) > 0 else 0.0
    p10, p50, p90 = np.percentile(lf, [10, 50, 90])
    onsets = int(np.sum(v[1:] & ~v[:-1])) + int(v[:1].sum())
    hop = sr // 100
    n = max(1, len(x) // hop)
    frames = x[: n * hop].reshape(n, hop) if len(x) >= hop else x[None, :]
    e = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    e10, e90 = np.percentile(e, [10, 90])
    return np.array([lf.mean(), lf.std(), p10, p50, p90, p90 - p10, slope,
                     float(np.abs(np.diff(lf)).mean()) if len(lf) > 1 else 0.0, v.mean(),
                     onsets / max(0.1, len(x) / sr), e.mean(), e.std(), e10, e90, e90 - e10], dtype=np.float32)


def _load_rows(cache: Path) -> dict[str, np.ndarray]:
    """Rows cached by item key in an npz (``keys``, ``rows``); empty when absent."""
    if not cache.exists():
        return {}
    with np.load(cache) as z:
        return dict(zip(z["keys"].tolist(), z["rows"]))


def _save_rows(cache: Path, have: dict[str, np.ndarray]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, keys=np.array(list(have)), rows=np.stack(list(have.values())))


def prosody_table(items, cache: Path) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Prosody rows of ``items``, computed once into ``cache`` (an npz keyed by item key)."""
    from concurrent.futures import ProcessPoolExecutor

    from emofuse.corpora import item_key

    have = _load_rows(cache)
    todo = [it for it in items if item_key(it) not in have]
    if todo:
        t = time.perf_counter()
        with ProcessPoolExecutor(2) as ex:
            rows = list(ex.map(_prosody_of, [str(it.paths[0]) for it in todo], chunksize=32))
        secs = time.perf_counter() - t
        have.update({item_key(it): r for it, r in zip(todo, rows)})
        _save_rows(cache, have)
        print(f"prosody of {len(todo)} clips: {secs:.0f} s on 2 processes")
    return np.stack([have[item_key(it)] for it in items])


def chunk_stats(items, extractor: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per item: std, max and mean absolute change over its chunk sequence ([T, d] -> [3 d])."""
    from emofuse.extract import load_sequences

    _, X, lengths = load_sequences(items, extractor)
    out = []
    for x, n in zip(X, lengths):
        x = x[: max(1, int(n))]
        d = np.abs(np.diff(x, axis=0)).mean(0) if len(x) > 1 else np.zeros(x.shape[1])
        out.append(np.concatenate([x.std(0), x.max(0), d]))
    return np.asarray(out, dtype=np.float32)


def augment(x: np.ndarray, seed: int, sr: int = 16000) -> np.ndarray:
    """One seeded random corruption of a 16 kHz clip, mimicking another recording chain: speed perturbation
    (0.9 / 1.0 / 1.1, pitch and tempo together, as Kaldi's recipes), gain +-6 dB, with p 0.5 a synthetic room
    (exponentially decaying noise, RT60 0.2-0.8 s, wet share 0.3-1), with p 0.6 stationary noise (white,
    pink or brown) at 5-25 dB SNR, with p 0.3 a telephone band (resampled through 8 kHz)."""
    from scipy.signal import fftconvolve, resample_poly

    rng = np.random.default_rng(seed)
    y = x.astype(np.float64)
    up_down = {0: (10, 9), 1: (1, 1), 2: (10, 11)}[int(rng.integers(3))]
    if up_down != (1, 1):
        y = resample_poly(y, *up_down)
    rms = np.sqrt(np.mean(y ** 2)) + 1e-9
    if rng.random() < 0.5:
        rt60 = rng.uniform(0.2, 0.8)
        t = np.arange(int(rt60 * sr)) / sr
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0 / rng.uniform(0.3, 1.0)
        wet = fftconvolve(y, rir / np.sqrt(np.sum(rir ** 2)))[: len(y)]
        y = wet * rms / (np.sqrt(np.mean(wet ** 2)) + 1e-9)
    if rng.random() < 0.6:
        n = rng.standard_normal(len(y))
        colour = int(rng.integers(3))  # 0 white, 1 pink (1/f), 2 brown (1/f^2)
        if colour:
            f = np.fft.rfftfreq(len(n), 1 / sr)
            shaped = np.fft.rfft(n) / np.maximum(f, 20.0) ** (colour / 2)
            n = np.fft.irfft(shaped, len(n))
        snr = rng.uniform(5, 25)
        y = y + n * rms / (np.sqrt(np.mean(n ** 2)) + 1e-9) * 10 ** (-snr / 20)
    if rng.random() < 0.3:
        y = resample_poly(resample_poly(y, 1, 2), 2, 1)[: len(y)]
    y = y * 10 ** (rng.uniform(-6, 6) / 20)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def _augmented_chunk(args: tuple[list[str], list[int], str]) -> np.ndarray:
    """Voice vectors of one speaker's clips (packed as the extractor packs them), each corrupted by :func:`augment`."""
    from emofuse.asr import load_whisper
    from emofuse.features import voice as vf
    from emofuse.media import load_audio

    paths, seeds, model_name = args
    global _AUG_MODEL
    if "_AUG_MODEL" not in globals():
        _AUG_MODEL = load_whisper(model_name, threads=1)
    clips = [augment(load_audio(p), s) for p, s in zip(paths, seeds)]
    return vf.embed_clips(_AUG_MODEL, clips)


def augmented_table(items, extractor: str, copy: int, cache: Path) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Rows of ``items`` from augmented audio (copy ``copy``: a different seed per clip and copy), computed
    once per speaker chunk into ``cache`` (an npz keyed by item key, saved after every chunk: resumable)."""
    import zlib
    from concurrent.futures import ProcessPoolExecutor

    from emofuse.corpora import item_key
    from emofuse.extractors import speaker_order

    have = _load_rows(cache)
    todo = [it for it in items if item_key(it) not in have]
    groups: dict[str, list] = {}
    for it in todo:
        groups.setdefault(f"{it.corpus}/{it.speaker}", []).append(it)
    chunks = [own[i:i + 64] for g in sorted(groups) for own in [speaker_order(groups[g])] for i in range(0, len(own), 64)]
    if chunks:
        t = time.perf_counter()
        model = extractor.removeprefix("voice-")
        jobs = [([str(it.paths[0]) for it in ch], [zlib.crc32(f"{item_key(it)}#{copy}".encode()) for it in ch], model)
                for ch in chunks]
        with ProcessPoolExecutor(2) as ex:
            for n, (ch, rows) in enumerate(zip(chunks, ex.map(_augmented_chunk, jobs))):
                have.update({item_key(it): r for it, r in zip(ch, rows)})
                if n % 10 == 9 or n == len(chunks) - 1:
                    _save_rows(cache, have)
                    print(f"augmented copy {copy}: {n + 1}/{len(chunks)} chunks, {time.perf_counter() - t:.0f} s", flush=True)
    return np.stack([have[item_key(it)] for it in items])


def attention_head(S: np.ndarray, L: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray, te: np.ndarray,
                   corpus: np.ndarray, n_classes: int, seed: int, epochs: int = 40) -> np.ndarray:
    """Attentive statistics pooling over the chunk sequence + a linear layer, trained with class-balanced
    cross-entropy (AdamW, dropout); the epoch kept is the one with the best mean per-corpus UA on the
    validation speakers. Returns test logits."""
    import torch
    from sklearn.metrics import balanced_accuracy_score

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    mask = np.arange(S.shape[1])[None, :] < L[:, None]
    flat = S[tr][mask[tr]]
    mu, sd = flat.mean(0), flat.std(0) + 1e-6
    Xs = torch.tensor((S - mu) / sd * mask[..., None], dtype=torch.float32)
    M = torch.tensor(mask)
    Y = torch.tensor(y)

    class Net(torch.nn.Module):
        def __init__(self, d: int, h: int = 128) -> None:
            super().__init__()
            self.att = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, 1))
            self.drop = torch.nn.Dropout(0.3)
            self.out = torch.nn.Linear(2 * d, n_classes)

        def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            a = self.att(x).squeeze(-1).masked_fill(~m, -1e9).softmax(-1).unsqueeze(-1)
            mean = (a * x).sum(1)
            std = ((a * (x - mean.unsqueeze(1)) ** 2).sum(1) + 1e-6).sqrt()
            return self.out(self.drop(torch.cat([mean, std], -1)))

    net = Net(S.shape[2])
    counts = np.bincount(y[tr], minlength=n_classes)
    w = torch.tensor(len(tr) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss(weight=w)
    rng = np.random.default_rng(seed)
    best, best_state = -1.0, None

    def run(rows: np.ndarray) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            return torch.cat([net(Xs[rows[i:i + 512]], M[rows[i:i + 512]]) for i in range(0, len(rows), 512)]).numpy()

    for _ in range(epochs):
        net.train()
        for b in np.array_split(rng.permutation(tr), max(1, len(tr) // 64)):
            opt.zero_grad()
            loss_fn(net(Xs[b], M[b]), Y[b]).backward()
            opt.step()
        lv = run(va)
        s = float(np.mean([balanced_accuracy_score(y[va][corpus[va] == c], lv[corpus[va] == c].argmax(1))
                           for c in set(corpus[va])]))
        if s > best:
            best, best_state = s, {k: t.clone() for k, t in net.state_dict().items()}
    net.load_state_dict(best_state)  # type: ignore[arg-type]
    return run(te)


def _prosody_of(path: str) -> np.ndarray:
    from emofuse.media import load_audio

    return prosody(load_audio(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--extractor", default="voice-whisper-base")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--augment-cache", type=Path, default=Path.home() / ".cache" / "emofuse" / "voice-aug-loco.npz")
    ap.add_argument("--prosody-cache", type=Path, default=Path.home() / ".cache" / "emofuse" / "prosody-loco.npz")
    a = ap.parse_args()
    variants = a.variants.split(",")
    if bad := [v for v in variants if v not in VARIANTS]:
        ap.error(f"unknown variants {bad}; choose from {', '.join(VARIANTS)}")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix
    from sklearn.neural_network import MLPClassifier

    from scipy.special import softmax

    from emofuse.corpora import item_key
    from emofuse.taxonomy import EMOTIONS
    from emofuse.training.linear import fit_temperature
    from emofuse.training.metrics import expected_calibration_error as ece
    from emofuse.training.data import labelled, vectors
    from emofuse.training.protocols import make_splits

    data = labelled(CORPORA, a.data)
    X, failed = vectors(data.items, a.extractor, None, workers=2)
    Xc, failed_c = vectors(data.items, f"{a.extractor}-clip", None, workers=2) if "clip_view" in variants else (None, set())
    keep = [i for i, it in enumerate(data.items) if item_key(it) not in failed | failed_c]
    if len(keep) < len(data.items):
        print(f"{len(data.items) - len(keep)} items failed extraction and are left out")
    items = [data.items[i] for i in keep]
    X = X[keep]
    Xc = Xc[keep] if Xc is not None else None
    labels = list(EMOTIONS)
    y = np.array([labels.index(data.y[i]) for i in keep])
    corpus = np.array([it.corpus for it in items])
    speaker = np.array([f"{it.corpus}/{it.speaker}" for it in items])
    row = {item_key(it): n for n, it in enumerate(items)}
    P = prosody_table(items, a.prosody_cache) if any(v.startswith("prosody") for v in variants) else None
    S = chunk_stats(items, f"{a.extractor}-seq") if "chunk_stats" in variants else None
    A = augmented_table(items, a.extractor, 1, a.augment_cache) if "augment" in variants else None
    if "attention" in variants:
        from emofuse.extract import load_sequences

        _, SEQ, SEQ_L = load_sequences(items, f"{a.extractor}-seq")
    splits = make_splits("loco", items, seed=a.seed, val_speakers=0.2)
    print(f"{len(items)} clips: " + ", ".join(f"{c} {int((corpus == c).sum())}" for c in CORPORA)
          + f"; features {a.extractor} [{X.shape[1]}]")

    def fit(kind: str, Xt: np.ndarray, yt: np.ndarray, w: np.ndarray | None, C: float):
        if kind == "mlp":
            m = MLPClassifier((256,), alpha=1.0 / C, early_stopping=True, random_state=a.seed, max_iter=200)
            return m.fit(Xt, yt)
        cw = {c: len(yt) / (len(labels) * max(1, (yt == c).sum())) for c in range(len(labels))}
        m = LogisticRegression(C=C, max_iter=2000, class_weight=cw, random_state=a.seed)
        return m.fit(Xt, yt, sample_weight=w)

    def logits(m, Z: np.ndarray) -> np.ndarray:
        full = np.full((len(Z), len(labels)), -1e9)
        if hasattr(m, "decision_function"):
            full[:, m.classes_] = m.decision_function(Z)
        else:
            full[:, m.classes_] = np.log(m.predict_proba(Z) + 1e-12)
        return full

    def ua(yt: np.ndarray, lg: np.ndarray, among: list[int] | None = None) -> float:
        cols = among if among is not None else list(range(len(labels)))
        pred = np.asarray(cols)[np.argmax(lg[:, cols], axis=1)]
        return float(balanced_accuracy_score(yt, pred))

    results: dict[str, dict[str, tuple[float, float]]] = {}
    extras: dict[str, dict] = {}
    for v in variants:
        t0 = time.perf_counter()
        F = X
        if v == "speaker_ref":
            F = group_z(X, speaker)
        elif v == "recording":
            F = group_z(X, recordings(speaker, 8, a.seed))
        elif v == "chunk_stats" and S is not None:
            F = np.hstack([X, S])
        elif v.startswith("prosody") and P is not None:
            F = np.hstack([X, P])
            if v == "prosody_recording":
                F = group_z(F, recordings(speaker, 8, a.seed))
        results[v] = {}
        for sp in splits:
            held = sp.name.removeprefix("loco-")
            tr, va, te = (np.array([row[k] for k in part]) for part in (sp.train, sp.val, sp.test))
            if v == "attention":
                lg = attention_head(SEQ, SEQ_L, y, tr, va, te, corpus, len(labels), a.seed)
                own = sorted(set(y[te].tolist()))
                results[v][held] = (ua(y[te], lg, own), ua(y[te], lg))
                pred = np.asarray(own)[np.argmax(lg[:, own], axis=1)]
                extras.setdefault("cm", {}).setdefault(v, {})[held] = (own, confusion_matrix(y[te], pred, labels=own))
                continue
            mean, scale = F[tr].mean(0), F[tr].std(0) + 1e-6
            Z = (F - mean) / scale
            if v == "corpus_stats":
                seen = np.concatenate([tr, va])
                stats = {c: (F[seen][corpus[seen] == c].mean(0), F[seen][corpus[seen] == c].std(0) + 1e-6)
                         for c in set(corpus[seen])}
                m_all = np.mean([m for m, _ in stats.values()], axis=0)
                s_all = np.mean([sd for _, sd in stats.values()], axis=0)
                Z = np.empty_like(F)
                for c in set(corpus):
                    k = corpus == c
                    m_c, s_c = stats.get(c, (m_all, s_all))
                    Z[k] = (F[k] - m_c) / s_c
            Zc = (Xc - mean) / scale if v == "clip_view" and Xc is not None else None
            if v == "augment" and A is not None:  # the augmented copy of the training corpora joins the fit
                Zc = (A - mean) / scale

            def weights(rows: np.ndarray) -> np.ndarray | None:
                if v != "balanced":
                    return None
                n = {c: (corpus[rows] == c).sum() for c in set(corpus[rows])}
                w = np.array([len(rows) / (len(n) * n[c]) for c in corpus[rows]])
                return w

            def design(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
                if Zc is None:
                    return Z[rows], y[rows], weights(rows)
                return np.vstack([Z[rows], Zc[rows]]), np.concatenate([y[rows], y[rows]]), None

            best, best_s = None, -1.0
            grid = C_GRID if v != "mlp" else (0.01, 0.1, 1.0)
            for C in grid:
                m = fit(v, *design(tr), C)
                lg = logits(m, Z[va])
                s = float(np.mean([ua(y[va][corpus[va] == c], lg[corpus[va] == c]) for c in set(corpus[va])]))
                if s > best_s:
                    best, best_s = C, s
            fit_rows = np.concatenate([tr, va])
            m = fit(v, *design(fit_rows), best)
            lg = logits(m, Z[te])
            own = sorted(set(y[te].tolist()))
            results[v][held] = (ua(y[te], lg, own), ua(y[te], lg))
            if v == "base":  # calibration: temperature on the validation speakers (a head fitted on train only)
                m_tr = fit(v, *design(tr), best)
                lv = logits(m_tr, Z[va])
                T = fit_temperature(lv, y[va])
                lt = logits(m_tr, Z[te])
                extras.setdefault("ece", {})[held] = tuple([T] + [ece(softmax(z / t, axis=1), yy) for z, yy in
                                                                  ((lv, y[va]), (lt, y[te])) for t in (1.0, T)])
            pred = np.asarray(own)[np.argmax(lg[:, own], axis=1)]
            extras.setdefault("cm", {}).setdefault(v, {})[held] = (own, confusion_matrix(y[te], pred, labels=own))
        mu = np.mean([r[0] for r in results[v].values()])
        print(f"{v}: mean UA {100 * mu:.1f}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    print("\nLOCO, UA % on the held-out corpus's own classes (all classes in brackets):")
    print("| variant | " + " | ".join(CORPORA) + " | mean ± std |")
    print("|---|" + "---|" * (len(CORPORA) + 1))
    for v, r in results.items():
        own = [100 * r[c][0] for c in CORPORA]
        allc = [100 * r[c][1] for c in CORPORA]
        print(f"| {v} | " + " | ".join(f"{o:.1f} ({x:.1f})" for o, x in zip(own, allc))
              + f" | {np.mean(own):.1f} ± {np.std(own):.1f} ({np.mean(allc):.1f}) |")
    if "ece" in extras:
        print("\nbase, calibration (ECE, 15 bins): T fitted on the validation speakers of the training corpora")
        print("| held out | T | val before | val after | held-out before | held-out after |\n|---|---|---|---|---|---|")
        for c in CORPORA:
            T, vb, vaf, tb, ta = extras["ece"][c]
            print(f"| {c} | {T:.2f} | {vb:.3f} | {vaf:.3f} | {tb:.3f} | {ta:.3f} |")
    best_v = max(results, key=lambda v: np.mean([r[0] for r in results[v].values()]) if v != "speaker_ref" else -1)
    print(f"\nconfusion matrices of {best_v} (rows true, columns predicted):")
    for c in CORPORA:
        own, cm = extras["cm"][best_v][c]
        names = [labels[i][:4] for i in own]
        print(f"{c}: " + " ".join(f"{n:>5}" for n in names))
        for n, r in zip(names, cm):
            print(f"  {n:>5} " + " ".join(f"{x:5d}" for x in r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
