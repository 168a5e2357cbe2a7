"""How the analysis fuses the expert outputs of one segment (``emofuse analyze --fusion NAME``).

* A **rule** of :data:`RULES` (no training): ``confidence`` is confidence-weighted averaging
  of the experts' distributions: each expert is weighted by its certainty, 1 - H(p)/log(K) (normalised
  negative entropy: a flat distribution adds nothing, a peaked one counts fully), times an optional
  per-modality prior (the default before issue 16). ``poe`` (the default) is a product of the calibrated
  experts with each expert's own prior divided out, tempered per modality and weighted by what the analysis
  knows of each expert's footing on the segment (:func:`reliability`); its few parameters are fitted on a
  constructed set (:data:`POE_FILE`, docs/fusion.md).
* A trained **fusion network** (:data:`emofuse.networks.NETWORKS`: ``late``, ``concat``, ``gated``, ...) given
  with ``--checkpoint PATH`` (:class:`NetworkFusion`). Its inputs are rebuilt from the checkpoint's feature
  specs out of what the analysis computes anyway (:func:`pipeline_sources`), standardised with the training
  statistics; modalities the analysis cannot compute (e.g. OpenFace action units) are masked, and the
  result's notes say so.

A fuser is called as ``fuse(outputs, features)``: ``outputs`` maps modality -> ExpertOutput, ``features``
maps source name -> the segment's raw vector (or ``[T, d]`` sequence); it returns a :class:`Fused` or None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .errors import InputError, UnknownNameError
from .experts import ExpertOutput, canonical_probs, project_va, softmax
from .registry import Registry
from .result import Fused
from .taxonomy import EMOTIONS

# fuse(expert outputs, features=None): features are {source name: raw vector} (see pipeline_sources)
FusionFn = Callable[..., "Fused | None"]
RULES: Registry[Callable[..., FusionFn]] = Registry("fusion rule")


def certainty(p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1.0)
    return float(1.0 - (-(p * np.log(p)).sum()) / np.log(len(p)))


@RULES.register("confidence")
def confidence_rule(priors: Mapping[str, float] | None = None, floor: float = 0.05) -> FusionFn:
    """``priors``: modality -> weight multiplier (default 1 each); ``floor`` keeps a lone flat expert usable."""
    pri = dict(priors or {})

    def fuse(outputs: Mapping[str, ExpertOutput], features: Mapping[str, np.ndarray] | None = None) -> Fused | None:
        if not outputs:
            return None
        names = list(outputs)
        P = np.array([[outputs[m].probs[e] for e in EMOTIONS] for m in names])
        w = np.array([pri.get(m, 1.0) * (floor + certainty(P[i])) for i, m in enumerate(names)])
        w = w / w.sum()
        p = w @ P
        k = int(p.argmax())
        v = float(w @ [outputs[m].valence for m in names])
        a = float(w @ [outputs[m].arousal for m in names])
        return Fused({e: float(x) for e, x in zip(EMOTIONS, p)}, EMOTIONS[k], float(p[k]), v, a,
                     {m: float(x) for m, x in zip(names, w)}, "confidence")

    return fuse


# -- product of experts ----------------------------------------------------------------------------------------
POE_FILE = Path(__file__).parent / "weights" / "fusion-poe.json"
POE_FORMAT = "emofuse-fusion-rule/1"


def expert_key(modality: str, out: ExpertOutput) -> str:
    """Which expert said it: ``text:<encoder>`` for text (the English and the multilingual heads differ), else
    the modality."""
    return f"text:{out.extra.get('encoder', '')}" if modality == "text" else modality


def reliability(modality: str, out: ExpertOutput, voice_seconds: float) -> float:
    """What the analysis knows of an expert's footing on this segment, in [0, 1]: the transcript's quality score
    for text (typed text: 1), the speech seconds over ``voice_seconds`` (capped at 1) for voice, the share of
    the segment's sampled frames in which the face was seen for face."""
    x = out.extra
    if modality == "text":
        q = x.get("quality")
        return 1.0 if q is None else float(np.clip(q, 0.0, 1.0))
    if modality == "voice":
        s = x.get("seconds")
        return 1.0 if s is None else float(np.clip(s / voice_seconds, 0.0, 1.0))
    if modality == "face":
        n, total = x.get("frames"), x.get("frames_total")
        return 1.0 if not n or not total else float(np.clip(n / total, 0.0, 1.0))
    return 1.0


def read_poe(path: str | Path = POE_FILE) -> dict[str, Any]:
    """The product-of-experts parameters (written by ``benchmarks/fusion_constructed.py --save``)."""
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"fusion rule 'poe' needs its parameters {path}; reinstall emofuse, or fit them with "
                         "`python benchmarks/fusion_constructed.py --save`") from None
    except (OSError, ValueError) as e:
        raise InputError(f"fusion rule 'poe': {path} is not readable JSON ({e}); reinstall emofuse") from None
    if doc.get("format") != POE_FORMAT or doc.get("labels") != list(EMOTIONS):
        raise InputError(f"fusion rule 'poe': {path} is not an {POE_FORMAT} file over {list(EMOTIONS)}")
    return doc


@RULES.register("poe")
def poe_rule(params: Mapping[str, Any] | None = None, use_priors: bool = True, use_temper: bool = True,
             use_reliability: bool = True, prior_back: bool | None = None) -> FusionFn:
    """Product of experts: log q(y) = sum_m t_m r_m (log p_m(y) - log pi_m(y)) + log pi(y) + const, where p_m
    is expert m's calibrated distribution, pi_m the distribution it gives when it knows nothing of the classes (its mean
    answer over a class-balanced set: its training prior, divided out so that each expert's prior is not
    counted once per expert), t_m a temper fitted on constructed training pairs (docs/fusion.md) and r_m the
    segment's :func:`reliability`. pi, the prior put back once, is the weight-averaged (geometric) prior of the
    experts present when the file's ``prior_back`` is true (one expert alone at t r = 1 then answers as it
    would alone), else uniform. An expert whose r_m is below the file's ``floor`` is left out, and ``method``
    says so; a lone expert (the others absent or left out) answers as it would alone. The flags switch parts
    off for comparison."""
    doc = dict(params) if params is not None else read_poe()
    notes = stale_experts(doc) if params is None else ()
    priors = {k: np.asarray(v, dtype=np.float64) for k, v in doc["priors"].items()} if use_priors else {}
    temper = {k: float(v) for k, v in doc["temper"].items()} if use_temper else {}
    floor, voice_s = float(doc.get("floor", 0.0)), float(doc.get("voice_seconds", 1.0))
    back = bool(doc.get("prior_back", False)) if prior_back is None else prior_back
    uniform = np.full(len(EMOTIONS), 1.0 / len(EMOTIONS))

    def fuse(outputs: Mapping[str, ExpertOutput], features: Mapping[str, np.ndarray] | None = None) -> Fused | None:
        z = np.zeros(len(EMOTIONS))
        w: dict[str, float] = {}
        left = []
        for m, o in outputs.items():
            r = reliability(m, o, voice_s) if use_reliability else 1.0
            if use_reliability and r < floor:
                left.append(f"{m} left out: reliability {r:.2f} < {floor:.2f}")
                continue
            p = np.clip(np.array([o.probs[e] for e in EMOTIONS]), 1e-6, 1.0)
            w[m] = temper.get(m, 1.0) * r
            z += w[m] * (np.log(p) - np.log(priors.get(expert_key(m, o), uniform)))
        if not w:
            return None
        if len(w) == 1:  # a lone expert answers as it would alone: nothing to weigh it against
            (m,) = w
            o = outputs[m]
            return Fused(dict(o.probs), max(o.probs, key=o.probs.__getitem__), float(o.confidence), o.valence,
                         o.arousal, {m: 1.0},
                         f"poe ({m} alone" + (f"; {'; '.join(left)})" if left else ")"))
        total = sum(w.values()) or 1.0
        if back and priors:
            z += sum(x / total * np.log(priors.get(expert_key(m, outputs[m]), uniform)) for m, x in w.items())
        z -= z.max()
        q = np.exp(z) / np.exp(z).sum()
        k = int(q.argmax())
        wn = {m: x / total for m, x in w.items()}
        v = float(sum(wn[m] * outputs[m].valence for m in wn))
        a = float(sum(wn[m] * outputs[m].arousal for m in wn))
        return Fused({e: float(x) for e, x in zip(EMOTIONS, q)}, EMOTIONS[k], float(q[k]), v, a, wn,
                     "poe" + (f" ({'; '.join(left)})" if left else ""))

    fuse.notes = notes  # type: ignore[attr-defined]  (Analyzer.fusion_notes: on every result)
    return fuse


# The shipped expert files whose answers the poe parameters were fitted on (the voice one: the shipped head of
# the recipe the fit's held-out-corpus heads followed); a file changed since makes its temper and prior stale.
POE_EXPERTS = ("face-cnn.int8.onnx", "face-cnn-b.int8.onnx", "text-minilm-l6-emo.safetensors",
               "text-e5-small.safetensors", "voice-whisper-base.safetensors")


def expert_hashes() -> dict[str, str]:
    """sha256 of the shipped expert files of :data:`POE_EXPERTS` (what ``--save`` records with the fit)."""
    from .experts import WEIGHTS_DIR
    from .store import sha256_file

    return {name: sha256_file(WEIGHTS_DIR / name) for name in POE_EXPERTS}


def stale_experts(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """A note when the shipped experts differ from those the poe parameters were fitted with: the rule still
    runs, its tempers and priors no longer calibrated to them."""
    fitted = doc.get("experts")
    if not isinstance(fitted, Mapping):
        return ("fusion rule poe: its parameters do not record the experts they were fitted with; refit them with "
                "`python benchmarks/fusion_constructed.py --save`",)
    now = expert_hashes()
    changed = sorted(n for n in now if fitted.get(n) != now[n])
    if not changed:
        return ()
    return (f"fusion rule poe: its parameters were fitted with other versions of {', '.join(changed)}, so its "
            "tempers and priors are not calibrated to them; refit with `python benchmarks/fusion_constructed.py "
            "--save`",)


def build(name: str = "poe", checkpoint: str | Path | None = None,
          supplied: set[str] | None = None) -> FusionFn:
    """The fuser ``--fusion NAME [--checkpoint PATH]`` asks for: a rule of :data:`RULES`, or a trained
    network (:class:`NetworkFusion`; NAME may then be None, the checkpoint names its network)."""
    if checkpoint is not None:
        return NetworkFusion(checkpoint, name, supplied)
    if name in RULES:
        return RULES[name]()
    from .networks import NETWORKS  # torch: only on this error path

    if name in NETWORKS:
        raise InputError(f"fusion {name!r} is a network: give its trained weights with --checkpoint PATH "
                         "(train one with `emofuse train CONFIG.toml --save PATH`)")
    raise UnknownNameError("fusion", name, fusion_names())


def fusion_names() -> list[str]:
    """Every name ``--fusion`` accepts: the rules and the registered networks."""
    from .networks import NETWORKS

    return sorted(set(RULES) | set(NETWORKS))


def pipeline_sources() -> dict[str, str]:
    """The feature sources the analysis computes itself for every segment, by the registered extractor that
    computes the same for training: name -> description. Anything else in a checkpoint is masked."""
    from .extractors import EXTRACTORS

    return {n: e.description for n, e in EXTRACTORS.items() if e.analysis}


def supplied_sources(modalities: tuple[str, ...], asr_model: str, window: float = 30.0) -> set[str]:
    """The pipeline sources an analyzer with these options fills (voice ones need its ASR model and window)."""
    from .extractors import EXTRACTORS

    def fills(c: Any) -> bool:
        return bool(c.asr_model == asr_model and c.window_s == window)

    return {n for n in pipeline_sources() if EXTRACTORS[n].modality in modalities
            and (EXTRACTORS[n].modality != "voice" or fills(EXTRACTORS[n].config))}


def _modality(source: str, default: str) -> str:
    """The analysis modality (voice / face / text) a feature source belongs to."""
    from .extractors import EXTRACTORS

    ex = EXTRACTORS.get(source)
    return ex.modality if ex is not None else default


def _as_input(x: np.ndarray, kind: str, dim: int) -> np.ndarray:
    """One segment's feature as a batch of 1: ``[1, d]`` (vector) or ``[1, T, d]`` (sequence)."""
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(1, -1, dim) if kind == "sequence" else x.reshape(1, -1)


class NetworkFusion:
    """A trained fusion network as the analysis's fusion step: ``fuse(outputs, features)``.

    ``features`` maps source names (:func:`pipeline_sources`) to the segment's raw vectors; each
    checkpoint modality whose source is there is standardised with the checkpoint's statistics and fed to
    the network; the others are left out (= masked: the networks treat an absent modality as missing).
    A segment where none is there falls back to the ``confidence`` rule over its experts (method says so)."""

    def __init__(self, checkpoint: str | Path, name: str | None = None,
                 supplied: set[str] | None = None) -> None:
        from .checkpoints import FeatureSpec, check_identity, read_network_meta

        onnx = str(checkpoint).endswith(".onnx")  # a graph of `emofuse export`: ONNX Runtime, no torch
        if onnx:
            from .export import read_sidecar

            side = read_sidecar(checkpoint)
            if side.get("kind") != "network":
                raise InputError(f"{checkpoint} is the graph of an expert head, not of a fusion network; give a "
                                 "network's graph (emofuse export CHECKPOINT)")
            meta = side["meta"]
        else:
            meta = read_network_meta(checkpoint)
        if name is not None and name != meta.get("model"):
            raise InputError(f"--fusion {name} does not match checkpoint {checkpoint}, which holds a "
                             f"{meta.get('model')!r} network; pass --fusion {meta.get('model')} (or leave it out)")
        if onnx:
            self.run = _OnnxNetwork(checkpoint, meta)
            self.meta = meta
        else:
            from .checkpoints import load_network

            model, self.meta = load_network(checkpoint)
            self.run = _TorchNetwork(model)
        self.name: str = self.meta["model"]
        self.specs = {m: FeatureSpec.from_dict(d) for m, d in self.meta["features"].items()}
        sources = pipeline_sources()
        supplied = set(sources) if supplied is None else set(supplied)
        for m, s in self.specs.items():  # same extractor name, other model/version/settings: other features
            check_identity(s, f"checkpoint {checkpoint}: modality {m!r}")
        self.usable = {m: s for m, s in self.specs.items() if s.source in supplied}
        lost = {m: s for m, s in self.specs.items() if m not in self.usable}
        if not self.usable:
            need = "; ".join(f"{m}: {s.source} ({s.kind}, dim {s.dim})" for m, s in self.specs.items())
            raise InputError(
                f"checkpoint {checkpoint} ({self.name}) needs {need}, and this analysis can compute none of them "
                f"(it computes {', '.join(sorted(supplied)) or 'nothing with these --modalities'}); use a "
                "checkpoint trained on emofuse's own features (e.g. voice-whisper-base), or other --modalities")
        notes = []
        from .corpora import CORPUS_FEATURES

        for m, s in lost.items():
            what = CORPUS_FEATURES.get(s.source) or s.description or "not an emofuse extractor"
            why = f"the analysis cannot compute it ({what})" if s.source not in sources else \
                "its modality or ASR model is not in use"
            notes.append(f"fusion network {self.name}: modality {m!r} ({s.source}) is masked: {why}")
        if lost and not float(self.meta.get("config", {}).get("modality_dropout", 0.0)):
            notes.append(f"fusion network {self.name} was trained without modality dropout, so its outputs with "
                         "masked modalities are outside what it was trained on; retrain with "
                         "fusion.modality_dropout > 0 for analysis use")
        self.notes: tuple[str, ...] = tuple(notes)
        self.labels = list(self.meta["labels"])

    def __call__(self, outputs: Mapping[str, ExpertOutput],
                 features: Mapping[str, np.ndarray] | None = None) -> Fused | None:
        feats = features or {}
        inputs = {m: s.normalise(_as_input(feats[s.source], s.kind, s.dim)).astype(np.float32)
                  for m, s in self.usable.items() if s.source in feats and feats[s.source] is not None}
        if not inputs:
            f = confidence_rule()(outputs)
            if f is None:
                return None
            return Fused(f.probs, f.label, f.confidence, f.valence, f.arousal, f.weights,
                         f"confidence (no input for {self.name})")
        logits, valence = self.run(inputs)
        q = softmax(logits)
        p = canonical_probs(q, self.labels)[0]  # e.g. RAVDESS calm counts as neutral
        v_proj, a = project_va(p)
        v = float(np.clip(float(valence[0]), -1, 1)) if valence is not None else v_proj
        k = int(p.argmax())
        used = sorted({_modality(self.usable[m].source, m) for m in inputs})
        return Fused({e: float(x) for e, x in zip(EMOTIONS, p)}, EMOTIONS[k], float(p[k]), v, a,
                     {m: 1.0 / len(used) for m in used}, self.name)


class _TorchNetwork:
    """A checkpoint's network in torch: the modalities given, the others left out."""

    def __init__(self, model: Any) -> None:
        import torch

        self.model, self.torch = model, torch

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        with self.torch.no_grad():
            out = self.model({m: self.torch.from_numpy(x) for m, x in inputs.items()})
        v = out.get("valence")
        return out["logits"].float().numpy(), None if v is None else v.float().numpy()


class _OnnxNetwork:
    """An exported network graph in ONNX Runtime: every modality fed, the absent ones as zeros masked False
    (which the networks treat exactly as left out)."""

    def __init__(self, graph: str | Path, meta: Mapping[str, Any]) -> None:
        from .checkpoints import FeatureSpec
        from .export import _session

        self.session = _session(Path(graph))
        self.specs = {m: FeatureSpec.from_dict(meta["features"][m]) for m, _ in meta["config"]["dims"]}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        feed: dict[str, np.ndarray] = {}
        for m, s in self.specs.items():
            x = inputs.get(m)
            if x is None:
                x = np.zeros((1, 1, s.dim) if s.kind == "sequence" else (1, s.dim), np.float32)
            feed[f"x_{m}"] = x
            feed[f"mask_{m}"] = np.array([m in inputs])
        got = dict(zip(self.outputs, self.session.run(None, feed)))
        return got["logits"], got.get("valence")
