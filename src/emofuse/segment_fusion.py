"""How the analysis fuses the expert outputs of one segment (``emofuse analyze --fusion NAME``).

* A **rule** of :data:`RULES` (no training): ``confidence`` (the default) is confidence-weighted averaging
  of the experts' distributions: each expert is weighted by its certainty, 1 - H(p)/log(K) (normalised
  negative entropy: a flat distribution adds nothing, a peaked one counts fully), times an optional
  per-modality prior.
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
from typing import Callable, Mapping

import numpy as np

from .errors import InputError, UnknownNameError
from .experts import ExpertOutput, canonical_probs, project_va
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


def build(name: str = "confidence", checkpoint: str | Path | None = None,
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


def supplied_sources(modalities: tuple[str, ...], asr_model: str) -> set[str]:
    """The pipeline sources an analyzer with these options fills (voice ones need its ASR model)."""
    from .extractors import EXTRACTORS

    return {n for n in pipeline_sources() if EXTRACTORS[n].modality in modalities
            and (EXTRACTORS[n].modality != "voice" or EXTRACTORS[n].config.asr_model == asr_model)}


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
        import torch

        from .checkpoints import FeatureSpec, check_identity, load_network, read_network_meta

        meta = read_network_meta(checkpoint)
        if name is not None and name != meta.get("model"):
            raise InputError(f"--fusion {name} does not match checkpoint {checkpoint}, which holds a "
                             f"{meta.get('model')!r} network; pass --fusion {meta.get('model')} (or leave it out)")
        self.model, self.meta = load_network(checkpoint)
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
        self._torch = torch

    def __call__(self, outputs: Mapping[str, ExpertOutput],
                 features: Mapping[str, np.ndarray] | None = None) -> Fused | None:
        feats = features or {}
        torch = self._torch
        inputs = {m: torch.from_numpy(s.normalise(_as_input(feats[s.source], s.kind, s.dim)))
                  for m, s in self.usable.items() if s.source in feats and feats[s.source] is not None}
        if not inputs:
            f = confidence_rule()(outputs)
            if f is None:
                return None
            return Fused(f.probs, f.label, f.confidence, f.valence, f.arousal, f.weights,
                         f"confidence (no input for {self.name})")
        with torch.no_grad():
            out = self.model(inputs)
        q = torch.softmax(out["logits"].float(), dim=-1).numpy()
        p = canonical_probs(q, self.labels)[0]  # e.g. RAVDESS calm counts as neutral
        v_proj, a = project_va(p)
        v = float(np.clip(float(out["valence"][0]), -1, 1)) if "valence" in out else v_proj
        k = int(p.argmax())
        used = sorted({_modality(self.usable[m].source, m) for m in inputs})
        return Fused({e: float(x) for e, x in zip(EMOTIONS, p)}, EMOTIONS[k], float(p[k]), v, a,
                     {m: 1.0 / len(used) for m in used}, self.name)
