"""A constructed multimodal set for fusion (issue 16): the voice, the face and the words of *different*
people, paired by emotion label. No corpus here pairs a face with the same person's speech, so this is the
honest substitute, and every figure from it says "constructed".

* **Voice and words**: clips of the speech corpora (RAVDESS, SAVEE, nEMO, TurEV-DB). Each corpus's speakers
  are split (seeded) into a *fit* part (for the fusion rule's few parameters) and a *validation* part; at most
  ``per_class`` clips per class, corpus and part. Each clip goes through the analysis's own ASR pass
  (:class:`emofuse.asr.WhisperASR`, whisper-base, clips of one speaker packed as ``analyze_many`` packs them):
  its transcript, language and quality score, and the voice embedding of its longest utterance.
* **The voice expert never heard the clip's corpus**: its probabilities come from a head of the shipped recipe
  (standardise + class-balanced logistic regression, C 0.01, on the ``voice-whisper-base`` features of every
  clip of the *other* three corpora), temperature-scaled on held-out speakers of those three: what a user's
  recording of an unseen corpus gets (leave one corpus out).
* **Text**: the analysis's text experts (MiniLM-emo for English, e5 for other languages) on the transcript
  when its quality passes the analysis's threshold, as ``analyze`` does; else the text is absent.
* **Face**: a FER2013 face of the same label, drawn (seeded) from PublicTest for the validation part and from
  the face network's own selection carve of train (faces it never trained on) for the fit part, through the
  analysis's face path (:meth:`FaceAnalyzer.analyze_image`: detection, else the tight-crop rule). A still
  face shown for a clip's length gives the same probabilities in every frame, so one image stands for the
  short video.

:func:`build` returns a :class:`Table` (one row per clip) and caches every stage under ``cache``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..taxonomy import EMOTIONS

SPEECH = ("ravdess", "savee", "nemo", "turevdb")
MODALITIES = ("voice", "face", "text")
FER_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class ConstructedOptions:
    data: str = "../shared/data"
    seed: int = 0
    per_class: int = 30  # clips per class, corpus and part
    val_share: float = 0.5  # each corpus's speakers in the validation part
    voice_C: float = 0.01  # the shipped voice recipe
    cache: str = "runs/constructed"
    # whom the voice expert never heard: "corpus-out" (the clip's corpus: what a user's recording gets) or
    # "speaker-out" (only the clip's part of the speakers; it heard the corpus and its language): a diagnostic
    # of what fusion would do with a voice expert as strong across corpora as it is within one
    voice_protocol: str = "corpus-out"

    def __post_init__(self) -> None:
        if self.per_class < 1 or not 0 < self.val_share < 1 or self.voice_C <= 0:
            raise InputError("ConstructedOptions: per_class >= 1, val_share in (0, 1), voice_C > 0")
        if self.voice_protocol not in ("corpus-out", "speaker-out"):
            raise InputError(f"voice_protocol must be corpus-out or speaker-out, not {self.voice_protocol!r}")


@dataclass
class Table:
    """One row per constructed item. ``P[m]``: [n, 7] probabilities over EMOTIONS (NaN rows: absent)."""

    label: np.ndarray  # [n] index into EMOTIONS
    part: np.ndarray  # [n] "fit" / "val"
    corpus: np.ndarray
    speaker: np.ndarray
    language: np.ndarray  # Whisper's language of the clip
    P: dict[str, np.ndarray]
    seconds: np.ndarray  # speech seconds of the voice utterance
    quality: np.ndarray  # transcript quality (NaN: no text)
    text: np.ndarray
    face_mode: np.ndarray
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0))
    voice_T: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [n] the voice head's temperature
    # what the analysis computes before the experts (NaN rows: absent): "voice" the utterance's Whisper vector,
    # "text" the transcript's embedding by the encoder of its language (text_src names it)
    X: dict[str, np.ndarray] = field(default_factory=dict)
    text_src: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def present(self, m: str) -> np.ndarray:
        return ~np.isnan(self.P[m]).any(axis=1)

    def log_probs(self, rows: np.ndarray, modalities: Sequence[str] = MODALITIES) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """What a trained fusion reads for ``rows``: per modality the experts' log-probabilities [n, 7] (0 where
        absent, or not among ``modalities``) and the presence mask [n]."""
        x, ok = {}, {}
        for m in MODALITIES:
            P = self.P[m][rows]
            ok[m] = ~np.isnan(P).any(axis=1) & (m in modalities)
            x[m] = np.where(ok[m][:, None], np.log(np.clip(np.nan_to_num(P, nan=1.0), 1e-6, 1.0)), 0.0)
        return x, ok

    def save(self, path: Path) -> None:
        np.savez(path, label=self.label, part=self.part, corpus=self.corpus, speaker=self.speaker,
                 language=self.language, seconds=self.seconds, quality=self.quality, text=self.text,
                 face_mode=self.face_mode, ids=self.ids, voice_T=self.voice_T, text_src=self.text_src,
                 **{f"P_{m}": self.P[m] for m in MODALITIES}, **{f"X_{k}": v for k, v in self.X.items()})

    @classmethod
    def load(cls, path: Path) -> "Table":
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        return cls(d["label"], d["part"], d["corpus"], d["speaker"], d["language"],
                   {m: d[f"P_{m}"] for m in MODALITIES}, d["seconds"], d["quality"], d["text"], d["face_mode"], d["ids"],
                   d.get("voice_T", np.full(len(d["label"]), np.nan)),
                   {k[2:]: v for k, v in d.items() if k.startswith("X_")}, d.get("text_src", np.zeros(0)))


def speaker_parts(items: Sequence[Any], share: float, seed: int) -> dict[str, str]:
    """Speaker -> "fit" / "val", per corpus, seeded; at least one speaker on each side."""
    out: dict[str, str] = {}
    for c in sorted({it.corpus for it in items}):
        spk = sorted({it.speaker for it in items if it.corpus == c})
        rng = np.random.default_rng([seed, len(c), sum(map(ord, c))])
        order = [spk[i] for i in rng.permutation(len(spk))]
        k = min(len(spk) - 1, max(1, round(share * len(spk))))
        out.update({s: ("val" if i < k else "fit") for i, s in enumerate(order)})
    return out


def select(items: Sequence[Any], parts: dict[str, str], per_class: int, seed: int) -> list[Any]:
    """At most ``per_class`` clips per (corpus, part, label), seeded, in a stable order."""
    from ..corpora import item_key

    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for it in sorted(items, key=item_key):
        groups.setdefault((it.corpus, parts[it.speaker], it.label), []).append(it)
    out = []
    for key in sorted(groups):
        g = groups[key]
        out += [g[i] for i in sorted(rng.permutation(len(g))[:per_class])]
    return out


def voice_heads(items: Sequence[Any], X: np.ndarray, C: float, seed: int,
                groups: np.ndarray | None = None) -> dict[str, Any]:
    """Per held-out group (default: the corpus): (mean, scale, fitted LogisticRegression, temperature) trained
    on the other groups; the temperature is fitted on 20 % of their speakers held out of a first fit."""
    from sklearn.linear_model import LogisticRegression

    from .linear import fit_temperature

    group = np.array([it.corpus for it in items]) if groups is None else np.asarray(groups)
    y = np.array([EMOTIONS.index(it.label) for it in items])
    spk = np.array([f"{it.corpus}/{it.speaker}" for it in items])
    rng = np.random.default_rng(seed)
    heads = {}
    for held in sorted(set(group.tolist())):
        tr = group != held
        speakers = sorted(set(spk[tr]))
        cal = set(rng.choice(speakers, size=max(1, len(speakers) // 5), replace=False).tolist())
        inner = tr & ~np.isin(spk, list(cal))
        outer = tr & np.isin(spk, list(cal))

        def fit(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
            mu, sd = X[rows].mean(0), X[rows].std(0) + 1e-6
            lr = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit((X[rows] - mu) / sd, y[rows])
            return mu, sd, lr

        mu, sd, lr = fit(inner)
        T = fit_temperature(lr.predict_log_proba((X[outer] - mu) / sd), np.searchsorted(lr.classes_, y[outer]))
        mu, sd, lr = fit(tr)  # refit on every training speaker, keep the temperature
        heads[held] = (mu, sd, lr, T)
    return heads


def voice_probs(head: Any, x: np.ndarray) -> np.ndarray:
    mu, sd, lr, T = head
    z = lr.predict_log_proba(((np.atleast_2d(x) - mu) / sd)) / T
    z -= z.max(axis=1, keepdims=True)
    q = np.exp(z)
    q /= q.sum(axis=1, keepdims=True)
    out = np.zeros((len(q), len(EMOTIONS)))
    out[:, lr.classes_] = q
    return out


def _faces(opts: ConstructedOptions, labels: Sequence[str], part: Sequence[str]) -> list[Path]:
    """A FER2013 face of each label: PublicTest for "val", the face network's selection carve for "fit"."""
    from ..corpora import item_key, prepare
    from ..features import face_net
    from .protocols import carve_val

    fer = [it for it in prepare("fer2013", opts.data) if it.label is not None]
    train = sorted((it for it in fer if it.split == "train"), key=item_key)
    # the shipped network's own carve (training/face_cnn.py carves with rng([seed, 99])), read from its header
    t = face_net.read_meta(face_net.weights_path()).get("training", {})
    fit, carve = carve_val(train, np.random.default_rng([int(t.get("seed", 0)), 99]), 0,
                           float(t.get("options", {}).get("val_fraction", 0.1)), None)
    if t.get("n_fit") not in (None, len(fit)):
        raise InputError(f"constructed set: the shipped face network trained on {t['n_fit']} FER2013 faces, this "
                         f"carve leaves {len(fit)}: its selection faces cannot be told apart; check --data")
    pools = {"val": sorted((it for it in fer if it.split in ("val", "dev")), key=item_key), "fit": carve}
    rng = np.random.default_rng([opts.seed, 7])
    by: dict[tuple[str, str], list[Path]] = {}
    for p, pool in pools.items():
        for it in pool:
            by.setdefault((p, it.label), []).append(it.paths[0])
    order = {k: list(rng.permutation(len(v))) for k, v in sorted(by.items())}
    out = []
    for lab, p in zip(labels, part):
        k = (p, lab)
        if not order[k]:  # reuse only once a label's faces are all used (disgust: 56 in PublicTest)
            order[k] = list(rng.permutation(len(by[k])))
        out.append(by[k][order[k].pop()])
    return out


def build(opts: ConstructedOptions = ConstructedOptions(), progress: bool = True) -> Table:
    """The constructed table (cached as ``<cache>/table-<seed>-<per_class>.npz``)."""
    cache = Path(opts.cache)
    cache.mkdir(parents=True, exist_ok=True)
    tag = "" if opts.voice_protocol == "corpus-out" else f"-{opts.voice_protocol}"
    final = cache / f"table-{opts.seed}-{opts.per_class}-{opts.val_share}{tag}.npz"
    if final.is_file():
        return Table.load(final)
    from ..corpora import item_key
    from ..extract import load_features
    from ..media import load_audio
    from .data import labelled

    data = labelled(SPEECH, opts.data)
    items = [it for it in data.items if it.speaker is not None]
    _, X = load_features(items, "voice-whisper-base")  # the extractor's cache (`emofuse extract` fills it)
    parts = speaker_parts(items, opts.val_share, opts.seed)
    by_part = opts.voice_protocol == "speaker-out"
    heads = voice_heads(items, X, opts.voice_C, opts.seed,
                        np.array([parts[it.speaker] for it in items]) if by_part else None)
    head_of = (lambda it: heads[parts[it.speaker]]) if by_part else (lambda it: heads[it.corpus])
    chosen = select(items, parts, opts.per_class, opts.seed)
    part = [parts[it.speaker] for it in chosen]

    # the analysis's ASR pass, one speaker's clips packed together (cached per speaker)
    from ..asr import ASROptions, WhisperASR

    asr = None
    rows: dict[str, dict[str, Any]] = {}
    speakers = sorted({(it.corpus, it.speaker) for it in chosen})
    for n, (c, s) in enumerate(speakers):
        f = cache / f"asr-{c}-{s}-{opts.seed}-{opts.per_class}-{opts.val_share}.npz".replace("/", "_")
        own = [it for it in chosen if (it.corpus, it.speaker) == (c, s)]
        if not f.is_file():
            asr = asr or WhisperASR(ASROptions())
            utts = asr.transcribe_many([load_audio(it.paths[0]) for it in own])
            emb = np.full((len(own), X.shape[1]), np.nan, dtype=np.float32)
            sec, qual = np.zeros(len(own)), np.full(len(own), np.nan)
            text, lang = [""] * len(own), [""] * len(own)
            for i, us in enumerate(utts):
                voiced = [u for u in us if u.embedding is not None]
                if voiced:
                    u = max(voiced, key=lambda u: u.end - u.start)
                    emb[i], sec[i], lang[i] = u.embedding, u.end - u.start, u.language
                ok = [u for u in us if u.text and u.reliable]
                if ok:
                    text[i] = " ".join(u.text.strip() for u in ok)
                    qual[i] = float(np.mean([u.quality for u in ok]))
            np.savez(f, emb=emb, sec=sec, qual=qual, text=np.array(text), lang=np.array(lang))
        with np.load(f) as z:
            for i, it in enumerate(own):
                rows[item_key(it)] = {k: z[k][i] for k in ("emb", "sec", "qual", "text", "lang")}
        if progress:
            print(f"\rASR: {n + 1}/{len(speakers)} speakers", end="", flush=True)
    if progress:
        print()
    r = [rows[item_key(it)] for it in chosen]
    n = len(chosen)
    P = {m: np.full((n, len(EMOTIONS)), np.nan) for m in MODALITIES}
    for i, (it, row) in enumerate(zip(chosen, r)):
        if not np.isnan(row["emb"]).any():
            P["voice"][i] = voice_probs(head_of(it), row["emb"])[0]

    # text: the analysis's experts by Whisper's language (MiniLM-emo for English, e5 otherwise)
    from ..pipeline import Analyzer, AnalyzerOptions

    an = Analyzer(AnalyzerOptions(modalities=("text",)))
    X = {"voice": np.stack([np.asarray(row["emb"], dtype=np.float32) for row in r])}
    text_src = np.array([""] * n, dtype=object)
    try:
        idx = [i for i, row in enumerate(r) if str(row["text"])]
        if idx:
            feats: list[dict[str, np.ndarray]] = [{} for _ in idx]
            outs = an._run_text([str(r[i]["text"]) for i in idx], [str(r[i]["lang"]) for i in idx], feats)
            dim = max(len(v) for f in feats for v in f.values())
            X["text"] = np.full((n, dim), np.nan, dtype=np.float32)
            for i, o, f in zip(idx, outs, feats):
                P["text"][i] = [o.probs[e] for e in EMOTIONS]
                ((src, x),) = f.items()
                X["text"][i], text_src[i] = x, src
    finally:
        an.close()

    # faces
    from ..features.face import FaceAnalyzer, FaceOptions
    from ..media import decode_image, probe

    faces = _faces(opts, [it.label for it in chosen], part)
    modes = [""] * n
    with FaceAnalyzer(FaceOptions()) as fa:
        for i, path in enumerate(faces):
            obs = fa.analyze_image(decode_image(probe(path)))
            if obs is not None:
                P["face"][i] = obs.probs
                modes[i] = obs.mode
    t = Table(np.array([EMOTIONS.index(it.label) for it in chosen]), np.array(part),
              np.array([it.corpus for it in chosen]), np.array([f"{it.corpus}/{it.speaker}" for it in chosen]),
              np.array([str(x["lang"]) for x in r]), P, np.array([float(x["sec"]) for x in r]),
              np.array([float(x["qual"]) for x in r]), np.array([str(x["text"]) for x in r]), np.array(modes),
              np.array([item_key(it) for it in chosen]), np.array([head_of(it)[3] for it in chosen]),
              X, text_src.astype(str))
    t.save(final)
    return t


def uncalibrated(t: Table) -> Table:
    """The same table with each expert's temperature undone: p = softmax(z / T), so softmax(z) =
    softmax(T log p). Temperatures: the voice head's per row, the face network's and the text heads' from their
    files (a head that records none was not scaled)."""
    from dataclasses import replace

    from ..experts import shipped_head
    from ..features import face_net

    def temp(name: str) -> float:
        return float(shipped_head(name).meta.get("training", {}).get("calibration", {}).get("temperature", 1.0))

    T = {"voice": t.voice_T, "face": np.full(len(t.label), float(face_net.read_meta(face_net.weights_path())["temperature"])),
         "text": np.where(t.language == "en", temp("text-minilm-l6-emo"), temp("text-e5-small"))}
    P = {}
    for m in MODALITIES:
        z = np.asarray(T[m], dtype=float)[:, None] * np.log(np.clip(t.P[m], 1e-12, 1.0))
        q = np.exp(z - np.nanmax(z, axis=1, keepdims=True))
        P[m] = q / q.sum(axis=1, keepdims=True)  # NaN rows (absent) stay NaN
    return replace(t, P=P)


def outputs_of(t: Table, i: int, modalities: Sequence[str] = MODALITIES) -> dict[str, Any]:
    """Row ``i`` as the analysis hands it to a fusion rule: modality -> ExpertOutput (absent ones left out),
    with what the reliabilities read (speech seconds, transcript quality, the text encoder)."""
    from ..experts import to_output

    out: dict[str, Any] = {}
    for m in modalities:
        p = t.P[m][i]
        if np.isnan(p).any():
            continue
        extra: dict[str, Any] = {}
        if m == "voice":
            extra["seconds"] = float(t.seconds[i])
        elif m == "text":
            extra = {"quality": float(t.quality[i]), "encoder": "minilm-l6-emo" if t.language[i] == "en" else "e5-small"}
        elif m == "face":
            extra = {"frames": 1, "frames_total": 1, "mode": str(t.face_mode[i])}
        out[m] = to_output(p, **extra)
    return out


def fit_poe(t: Table, rows: np.ndarray, floor: float = 0.0, voice_seconds: float = 1.0,
            reliability: bool = True, prior_back: bool = False) -> dict[str, Any]:
    """The product-of-experts parameters from the constructed rows ``rows`` (the fit part): each expert's prior
    (its mean answer, class-balanced: every class's rows weigh the same) and the per-modality tempers that
    minimise the fused negative log-likelihood (L-BFGS-B, tempers in [0, 3])."""
    from scipy.optimize import minimize

    from ..segment_fusion import POE_FORMAT, expert_key, poe_rule

    rows = np.asarray(rows)
    priors: dict[str, list[float]] = {}
    keyed: dict[str, list[tuple[int, np.ndarray]]] = {}
    for i in rows:
        for m, o in outputs_of(t, int(i)).items():
            keyed.setdefault(expert_key(m, o), []).append((int(t.label[i]), np.array([o.probs[e] for e in EMOTIONS])))
    for k, pairs in sorted(keyed.items()):
        y = np.array([c for c, _ in pairs])
        P = np.stack([p for _, p in pairs])
        means = [P[y == c].mean(0) for c in np.unique(y)]
        prior = np.mean(means, axis=0)
        priors[k] = (prior / prior.sum()).tolist()
    base = {"format": POE_FORMAT, "labels": list(EMOTIONS), "priors": priors, "floor": floor,
            "voice_seconds": voice_seconds, "prior_back": prior_back}
    outs = [outputs_of(t, int(i)) for i in rows]
    y = t.label[rows]

    def nll(x: np.ndarray) -> float:
        fuse = poe_rule(dict(base, temper=dict(zip(MODALITIES, x.tolist()))), use_reliability=reliability)
        loss = 0.0
        for o, c in zip(outs, y):
            f = fuse(o)
            loss -= np.log(max(f.probs[EMOTIONS[c]], 1e-9)) if f is not None else np.log(1 / len(EMOTIONS))
        return loss / len(outs)

    res = minimize(nll, np.ones(len(MODALITIES)), method="L-BFGS-B", bounds=[(0.0, 3.0)] * len(MODALITIES))
    return dict(base, temper={m: round(float(v), 4) for m, v in zip(MODALITIES, res.x)},
                fit={"rows": int(len(rows)), "nll": round(float(res.fun), 4), "reliability": reliability})
