"""Training-run configuration: one TOML layer for linear heads and fusion networks, read with :mod:`tomllib`
and written back by :func:`dump_config` so that ``load_config`` of the dump equals the original (every run
writes its ``config.toml``).

    name = "voice-ravdess-kfold"
    seed = 0
    out = "runs/voice-ravdess-kfold"
    licence = "..."                # optional: the training data's terms, recorded in a saved head

    [data]
    corpora = ["ravdess"]          # several for loco / multi-corpus heads
    root = "../shared/data"        # relative paths are relative to the current directory
    extractor = "voice-whisper-tiny.en"     # linear heads: emofuse.extractors.EXTRACTORS
    # train_views = ["voice-whisper-tiny.en-clip"]  # more rows per training item (never selected or tested on)
    # modalities = {au = "ravdess_av:au", voice = "voice-whisper-base"}   # networks, instead of extractor
    # labels = "canonical"         # or "original" (one corpus's own classes, e.g. RAVDESS's 8)
    # cache = "..."                # default: emofuse.store.feature_cache_dir()
    # limit = 300                  # a seeded subsample of N labelled items per corpus
    # normalize = "speaker"        # z-score features per speaker or corpus (transductive; see run.py)

    [protocol]                     # or several [[protocol]] tables: the first selects a saved model's settings
    name = "kfold"                 # emofuse.training.protocols.PROTOCOLS
    [protocol.params]              # keyword arguments of the protocol (val_speakers, val_fraction, val_group, k)
    val_speakers = 0.2

    [model]                        # a linear head ...
    kind = "linear"
    C_grid = [0.001, 0.01, 0.1, 1.0]
    class_weight = "balanced"      # "none", or a list of both to choose on validation
    # corpus_weight = {meld = [1.0, 2.0]}    # sample weight per corpus, a grid to choose on validation
    # select = "UA"                # or {meld = "weighted_f1", goemotions = "macro_f1"}: mean over corpora
    # select_folds = 5             # choose on k speaker-disjoint folds of each split's training part
    # calibrate = true             # temperature scaling fitted on the selection rows (ECE in the report)

    # [regression]                 # optional (linear): valence / arousal ridge regressors of the head
    # alpha_grid = [100.0, 1000.0]
    # [regression.valence]         # corpus = selection metric (emofuse.training.metrics.regression_metrics)
    # emobank = "Corr"

    # [fusion]                     # ... or a fusion network (instead of [model])
    # model = "gated"              # emofuse.networks.NETWORKS; any FusionConfig field may follow
    # [fusion.train]               # emofuse.training.networks.TrainOptions

Every error is an :class:`emofuse.errors.InputError` naming the file and the bad key / value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..corpora import CORPUS_FEATURES
from .data import LABEL_SETS, NORMALIZE
from .networks import TrainOptions

if TYPE_CHECKING:
    from .face_cnn import FaceCNNOptions
    from .finetune import FinetuneOptions

__all__ = ["DataConfig", "FusionSection", "ModelConfig", "ProtocolConfig", "RegressionConfig", "TrainConfig",
           "config_from_dict", "config_to_dict", "dump_config", "load_config", "loads_config"]

MODEL_KINDS = ("linear",)
CLASS_WEIGHTS = ("balanced", "none")
CLASS_METRICS = ("UA", "WA", "macro_f1", "weighted_f1")
REGRESSION_METRICS = ("Corr", "Acc2_non0", "Acc2_has0", "MAE")
REGRESSION_TARGETS = ("valence", "arousal")


@dataclass(frozen=True)
class DataConfig:
    corpora: tuple[str, ...]
    root: str
    extractor: str | None = None  # linear heads
    cache: str | None = None  # None = emofuse.store.feature_cache_dir()
    limit: int | None = None  # a seeded subsample of N labelled items per corpus (smoke runs)
    normalize: str = "none"  # "none", "corpus" or "speaker": z-score features within each group
    labels: str = "canonical"  # "canonical" (EMOTIONS) or "original" (the corpus's own classes)
    train_views: tuple[str, ...] = ()  # extractors whose rows of the training items join every fit
    modalities: tuple[tuple[str, str], ...] = ()  # networks: (modality, source) pairs

    def __post_init__(self) -> None:
        if not self.corpora:
            raise InputError("data.corpora: name at least one corpus")
        if self.extractor is not None and self.modalities:
            raise InputError("data: give either extractor (a linear head) or modalities (a [fusion] network)")
        if self.normalize not in NORMALIZE:
            raise InputError(f"data.normalize: must be one of {NORMALIZE}, not {self.normalize!r}")
        if self.labels not in LABEL_SETS:
            raise InputError(f"data.labels: must be one of {LABEL_SETS}, not {self.labels!r}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"data.limit: must be >= 1, not {self.limit!r}")


@dataclass(frozen=True)
class ProtocolConfig:
    name: str = "kfold"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .protocols import check_params

        try:
            check_params(self.name, self.params)
        except InputError as e:
            raise InputError(f"protocol: {e}") from None


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "linear"
    C_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    class_weight: str | None | tuple[str | None, ...] = "balanced"  # a tuple = a grid
    corpus_weight: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (corpus, grid of sample weights)
    select: str | tuple[tuple[str, str], ...] = "UA"  # a metric, or (corpus, metric) pairs (mean over them)
    select_folds: int = 0  # 0: the split's validation part; k: k speaker-disjoint folds of its training part
    calibrate: bool = True  # temperature scaling fitted on the selection rows (the saved head's confidence)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise InputError(f"model.kind: unknown model kind {self.kind!r}; known: {', '.join(MODEL_KINDS)}")
        for i, v in enumerate(self.C_grid):
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"model.C_grid[{i}]: must be a positive finite number, not {v!r}")
        if not self.C_grid:
            raise InputError("model.C_grid: must be a non-empty list of positive numbers")
        if not self.class_weights or any(w not in ("balanced", None) for w in self.class_weights):
            raise InputError(f"model.class_weight: must be one of {CLASS_WEIGHTS} or a list of them, not "
                             f"{self.class_weight!r}")
        for corpus, grid in self.corpus_weight:
            if not grid or not all(math.isfinite(w) and w > 0 for w in grid):
                raise InputError(f"model.corpus_weight.{corpus}: must be positive numbers, not {grid!r}")
        for corpus, metric in ((("", self.select),) if isinstance(self.select, str) else self.select):
            if metric not in CLASS_METRICS:
                raise InputError(f"model.select{'.' + corpus if corpus else ''}: must be one of {CLASS_METRICS}, "
                                 f"not {metric!r}")
        if self.select_folds < 0 or self.select_folds == 1:
            raise InputError("model.select_folds: must be 0 (the validation part) or at least 2")
        if not isinstance(self.calibrate, bool):
            raise InputError(f"model.calibrate: must be true or false, not {self.calibrate!r}")

    @property
    def class_weights(self) -> tuple[str | None, ...]:
        return self.class_weight if isinstance(self.class_weight, tuple) else (self.class_weight,)


@dataclass(frozen=True)
class RegressionConfig:
    alpha_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
    targets: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # (target, ((corpus, metric), ...))
    val_fraction: float = 0.1  # the alpha-selection part carved from the training splits
    val_group: str | None = None  # as the protocols' val_group (e.g. "video": translations hold out alike)

    def __post_init__(self) -> None:
        if not self.alpha_grid or not all(math.isfinite(a) and a > 0 for a in self.alpha_grid):
            raise InputError(f"regression.alpha_grid: must be positive numbers, not {self.alpha_grid!r}")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"regression.val_fraction: must be a fraction in (0, 1), not {self.val_fraction!r}")
        if not self.targets:
            raise InputError("regression: names no target; add a [regression.valence] or [regression.arousal] table")
        for target, metrics in self.targets:
            if target not in REGRESSION_TARGETS:
                raise InputError(f"regression.{target}: unknown target; known: {', '.join(REGRESSION_TARGETS)}")
            for corpus, metric in metrics:
                if metric not in REGRESSION_METRICS:
                    raise InputError(f"regression.{target}.{corpus}: must be one of {REGRESSION_METRICS}, not "
                                     f"{metric!r}")


@dataclass(frozen=True)
class FusionSection:
    model: str  # emofuse.networks.NETWORKS
    params: dict[str, Any] = field(default_factory=dict)  # FusionConfig fields besides dims / n_classes
    train: TrainOptions = field(default_factory=TrainOptions)


@dataclass(frozen=True)
class TrainConfig:
    name: str
    data: DataConfig
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig | None = field(default_factory=ModelConfig)  # None for a network run
    seed: int = 0
    out: str = "runs/run"
    fusion: FusionSection | None = None
    regression: RegressionConfig | None = None
    extra_protocols: tuple[ProtocolConfig, ...] = ()  # reported beside the first
    licence: str = ""
    finetune: "FinetuneOptions | None" = None  # a fine-tuned text encoder (emofuse.training.finetune)
    face_cnn: "FaceCNNOptions | None" = None  # the face-expression CNN (emofuse.training.face_cnn)

    def __post_init__(self) -> None:
        need = {"linear": (True, False), "network": (False, True)}.get(self.kind, (False, False))
        if (self.data.extractor is not None, bool(self.data.modalities)) != need:
            raise InputError("data: a linear head reads data.extractor, a [fusion] network data.modalities, a "
                             "[finetune] or [face_cnn] run neither (it reads the corpora itself)")

    @property
    def kind(self) -> str:
        return ("network" if self.fusion is not None else "finetune" if self.finetune is not None else
                "face_cnn" if self.face_cnn is not None else "linear")

    @property
    def protocols(self) -> tuple[ProtocolConfig, ...]:
        return (self.protocol,) + self.extra_protocols


# ------------------------------------------------------------------------------------------- validation


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, msg: str) -> InputError:
        return InputError(f"{self.where}: {key}: {msg}")

    def table(self, d: Any, key: str) -> dict[str, Any]:
        if not isinstance(d, dict):
            raise self.fail(key, f"must be a table, not {d!r}")
        return d

    def keys(self, d: dict[str, Any], prefix: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
        for k in d:
            if k not in allowed:
                raise self.fail(f"{prefix}{k}", f"unknown key; allowed: {', '.join(allowed)}")
        for k in required:
            if k not in d:
                raise self.fail(f"{prefix}{k}", "missing required key")

    def string(self, v: Any, key: str) -> str:
        if not isinstance(v, str) or not v.strip():
            raise self.fail(key, f"must be a non-empty string, not {v!r}")
        return v

    def integer(self, v: Any, key: str, minimum: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"must be an integer, not {v!r}")
        if minimum is not None and v < minimum:
            raise self.fail(key, f"must be >= {minimum}, not {v!r}")
        return v

    def build(self, cls: type, *args: Any) -> Any:
        """``cls(*args)``, its own validation's InputError prefixed with the file."""
        try:
            return cls(*args)
        except InputError as e:
            raise InputError(f"{self.where}: {e}") from None

    def positive_list(self, v: Any, key: str) -> tuple[float, ...]:
        v = v if isinstance(v, list) else [v]
        if not v:
            raise self.fail(key, "must be a non-empty list of positive numbers")
        for i, x in enumerate(v):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
                raise self.fail(f"{key}[{i}]", f"must be a positive finite number, not {x!r}")
        return tuple(float(x) for x in v)

    def names(self, v: Any, key: str, registry: Any) -> tuple[str, ...]:
        """Registered names (normalised as the registry spells them: stripped, lower case)."""
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not v:
            raise self.fail(key, f"must be a non-empty list of names, not {v!r}")
        out = []
        for i, name in enumerate(v):
            name = self.string(name, f"{key}[{i}]").strip().lower()
            if name not in registry:
                raise self.fail(f"{key}[{i}]", f"unknown {registry.kind} {name!r}; known: {', '.join(sorted(registry))}")
            out.append(name)
        if len(set(out)) != len(out):
            raise self.fail(key, f"a name is listed twice: {v!r}")
        return tuple(out)


def _data(c: _Checker, dd: dict[str, Any], network: bool, finetune: bool = False) -> DataConfig:
    from ..corpora import CORPORA
    from ..extractors import EXTRACTORS

    if finetune:  # the run reads the corpora's text itself: no features, no normalisation
        c.keys(dd, "data.", ("corpora", "root", "limit"), ("corpora", "root"))
        limit = c.integer(dd["limit"], "data.limit") if "limit" in dd else None
        return c.build(DataConfig, c.names(dd["corpora"], "data.corpora", CORPORA), c.string(dd["root"], "data.root"),
                       None, None, limit)
    c.keys(dd, "data.", ("corpora", "root", "extractor", "cache", "limit", "normalize", "labels", "train_views",
                         "modalities"), ("corpora", "root", "modalities" if network else "extractor"))
    corpora = c.names(dd["corpora"], "data.corpora", CORPORA)
    extractor = None
    mods: tuple[tuple[str, str], ...] = ()
    if network:
        for k in ("extractor", "train_views"):
            if k in dd:
                raise c.fail(f"data.{k}", "a [fusion] run reads data.modalities (modality = source) instead")
        md = c.table(dd["modalities"], "data.modalities")
        if not md:
            raise c.fail("data.modalities", "must be a table modality = source, e.g. au = 'ravdess_av:au'")
        for k, v in md.items():
            src = c.string(v, f"data.modalities.{k}")
            if src not in CORPUS_FEATURES and src not in EXTRACTORS:
                raise c.fail(f"data.modalities.{k}", f"unknown source {src!r}; known: "
                             f"{', '.join(sorted(CORPUS_FEATURES) + sorted(EXTRACTORS))}")
        mods = tuple((str(k), str(v)) for k, v in md.items())
        if len(corpora) != 1:
            raise c.fail("data.corpora", "a [fusion] run reads one corpus")
    else:
        if "modalities" in dd:
            raise c.fail("data.modalities", "a linear head reads data.extractor; data.modalities needs a [fusion] table")
        extractor = c.string(dd["extractor"], "data.extractor")
        if extractor not in EXTRACTORS:
            raise c.fail("data.extractor", f"unknown extractor {extractor!r}; known: {', '.join(sorted(EXTRACTORS))}")
    views = c.names(dd["train_views"], "data.train_views", EXTRACTORS) if dd.get("train_views") else ()
    limit = c.integer(dd["limit"], "data.limit") if "limit" in dd else None
    cache = c.string(dd["cache"], "data.cache") if "cache" in dd else None
    return c.build(DataConfig, corpora, c.string(dd["root"], "data.root"), extractor, cache, limit,
                   c.string(dd.get("normalize", "none"), "data.normalize"),
                   c.string(dd.get("labels", "canonical"), "data.labels"), views, mods)


def _protocol(c: _Checker, pd: Any, key: str) -> ProtocolConfig:
    from .protocols import PROTOCOLS

    pd = c.table(pd, key)
    c.keys(pd, f"{key}.", ("name", "params"), ())
    pname = c.string(pd.get("name", "kfold"), f"{key}.name").strip().lower()
    if pname not in PROTOCOLS:
        raise c.fail(f"{key}.name", f"unknown protocol {pname!r}; known: {', '.join(PROTOCOLS)}")
    params = c.table(pd.get("params", {}), f"{key}.params")
    if "seed" in params:
        raise c.fail(f"{key}.params.seed", "set the top-level `seed` instead (it seeds the protocol)")
    return c.build(ProtocolConfig, pname, dict(params))


def _model(c: _Checker, md: Any, corpora: tuple[str, ...]) -> ModelConfig:
    md = c.table(md, "model")
    c.keys(md, "model.", ("kind", "C_grid", "class_weight", "corpus_weight", "select", "select_folds", "calibrate"), ())
    kind = c.string(md.get("kind", "linear"), "model.kind")
    grid = c.positive_list(md.get("C_grid", list(ModelConfig.C_grid)), "model.C_grid")
    cws = md.get("class_weight", "balanced")
    cw_list = cws if isinstance(cws, list) else [cws]
    if not cw_list or any(not isinstance(w, str) for w in cw_list):
        raise c.fail("model.class_weight", f"must be one of {CLASS_WEIGHTS} or a list of them, not {cws!r}")
    cw_opts = tuple(None if w == "none" else w for w in cw_list)
    cw: str | None | tuple[str | None, ...] = cw_opts if isinstance(cws, list) else cw_opts[0]
    wd = c.table(md.get("corpus_weight", {}), "model.corpus_weight")
    weights = []
    for k, v in wd.items():
        if k not in corpora:
            raise c.fail(f"model.corpus_weight.{k}", f"not one of data.corpora {list(corpora)}")
        weights.append((k, c.positive_list(v, f"model.corpus_weight.{k}")))
    sel = md.get("select", "UA")
    select: str | tuple[tuple[str, str], ...]
    if isinstance(sel, dict):
        for k in sel:
            if k not in corpora:
                raise c.fail(f"model.select.{k}", f"not one of data.corpora {list(corpora)}")
        missing = [k for k in corpora if k not in sel]
        if missing:
            raise c.fail("model.select", f"names no metric for the corpora {missing}")
        select = tuple((str(k), str(v)) for k, v in sel.items())
    else:
        select = c.string(sel, "model.select")
    folds = c.integer(md.get("select_folds", 0), "model.select_folds")
    return c.build(ModelConfig, kind, grid, cw, tuple(weights), select, folds, md.get("calibrate", True))


def _regression(c: _Checker, rd: Any) -> RegressionConfig:
    from ..corpora import CORPORA

    rd = c.table(rd, "regression")
    c.keys(rd, "regression.", ("alpha_grid", "val_fraction", "val_group") + REGRESSION_TARGETS, ())
    grid = c.positive_list(rd.get("alpha_grid", list(RegressionConfig.alpha_grid)), "regression.alpha_grid")
    frac = rd.get("val_fraction", 0.1)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)):
        raise c.fail("regression.val_fraction", f"must be a fraction in (0, 1), not {frac!r}")
    group = c.string(rd["val_group"], "regression.val_group") if "val_group" in rd else None
    targets = []
    for t in REGRESSION_TARGETS:
        if t not in rd:
            continue
        td = c.table(rd[t], f"regression.{t}")
        if not td:
            raise c.fail(f"regression.{t}", "must name at least one corpus = metric")
        for k, v in td.items():
            if k not in CORPORA:
                raise c.fail(f"regression.{t}.{k}", f"unknown corpus {k!r}; known: {', '.join(sorted(CORPORA))}")
            c.string(v, f"regression.{t}.{k}")
        targets.append((t, tuple((str(k), str(v)) for k, v in td.items())))
    return c.build(RegressionConfig, grid, tuple(targets), float(frac), group)


def _fusion(c: _Checker, fd: Any, seed: int) -> FusionSection:
    from ..networks import FusionConfig, NETWORKS

    fus = dict(c.table(fd, "fusion"))
    model = fus.pop("model", None)
    if model not in NETWORKS:
        raise c.fail("fusion.model", f"{model!r} is not a registered fusion network ({', '.join(sorted(NETWORKS))})")
    tr = c.table(fus.pop("train", {}) or {}, "fusion.train")
    known = {f.name for f in dataclasses.fields(FusionConfig)} - {"dims", "n_classes"}
    bad = sorted(set(fus) - known)
    if bad:
        raise c.fail(f"fusion.{bad[0]}", f"unknown FusionConfig field; known: {', '.join(sorted(known))}")
    tknown = {f.name for f in dataclasses.fields(TrainOptions)}
    bad = sorted(set(tr) - tknown)
    if bad:
        raise c.fail(f"fusion.train.{bad[0]}", f"unknown option; known: {', '.join(sorted(tknown))}")
    try:
        train = TrainOptions(**({"seed": seed} | tr))
    except InputError as e:
        raise c.fail("fusion.train", str(e)) from None
    try:  # the network's own checks, now rather than after feature extraction (dims are set by the data)
        FusionConfig(dims={"x": 1}, n_classes=2, **({"regression": False} | fus))
    except InputError as e:
        raise c.fail("fusion", str(e)) from None
    except TypeError as e:
        raise c.fail("fusion", f"a value has the wrong type ({e}); see emofuse.networks.FusionConfig") from None
    return FusionSection(str(model), fus, train)


def _finetune(c: _Checker, fd: Any, corpora: tuple[str, ...]) -> "FinetuneOptions":
    from .finetune import FinetuneOptions

    fd = dict(c.table(fd, "finetune"))
    known = [f.name for f in dataclasses.fields(FinetuneOptions)]
    c.keys(fd, "finetune.", tuple(known), ())
    if "regress" in fd:  # {corpus = ["valence", "arousal"]}: corpora of their own, beside data.corpora
        from ..corpora import CORPORA

        t = c.table(fd["regress"], "finetune.regress")
        for k, v in t.items():
            if k not in CORPORA:
                raise c.fail(f"finetune.regress.{k}", f"unknown corpus; known: {', '.join(sorted(CORPORA))}")
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise c.fail(f"finetune.regress.{k}", f"a list such as [\"valence\", \"arousal\"], not {v!r}")
        fd["regress"] = tuple((str(k), tuple(v)) for k, v in t.items())
    regressed = tuple(k for k, _ in fd.get("regress", ()))
    for key, allowed in (("per_epoch", corpora + regressed), ("select", corpora)):
        if key in fd:
            t = c.table(fd[key], f"finetune.{key}")
            for k in t:
                if k not in allowed:
                    raise c.fail(f"finetune.{key}.{k}", f"not one of {list(allowed)} (data.corpora"
                                 + (" and finetune.regress)" if key == "per_epoch" else ")"))
            fd[key] = tuple((str(k), v) for k, v in t.items())
    if "targets" in fd:
        fd["targets"] = tuple(fd["targets"]) if isinstance(fd["targets"], list) else fd["targets"]
    return _options(c, fd, FinetuneOptions, "finetune")


def _options(c: _Checker, fd: dict[str, Any], cls: Any, section: str) -> Any:
    """``cls(**fd)`` for an options dataclass whose fields have scalar or tuple defaults, each value's type
    checked against its default's (ints accepted for floats)."""
    for k, v in fd.items():
        default = next(f.default for f in dataclasses.fields(cls) if f.name == k)
        ok = (isinstance(v, tuple) if isinstance(default, tuple) else
              isinstance(v, (int, float)) and not isinstance(v, bool) if isinstance(default, float) else
              isinstance(v, type(default)) and not (isinstance(v, bool) and not isinstance(default, bool)))
        if not ok:
            raise c.fail(f"{section}.{k}", f"must be a {type(default).__name__}, not {v!r}")
        if isinstance(default, float):
            fd[k] = float(v)
    try:
        return cls(**fd)
    except InputError as e:
        raise InputError(f"{c.where}: {e}") from None


def _face_cnn(c: _Checker, fd: Any) -> "FaceCNNOptions":
    from .face_cnn import FaceCNNOptions

    fd = dict(c.table(fd, "face_cnn"))
    c.keys(fd, "face_cnn.", tuple(f.name for f in dataclasses.fields(FaceCNNOptions)), ())
    return _options(c, fd, FaceCNNOptions, "face_cnn")


def config_from_dict(d: dict[str, Any], where: str = "config") -> TrainConfig:
    """Validate a parsed TOML document and build the :class:`TrainConfig`."""
    c = _Checker(where)
    c.table(d, "<top>")
    c.keys(d, "", ("name", "seed", "out", "licence", "data", "protocol", "model", "fusion", "regression", "finetune",
                   "face_cnn"),
           ("data",))
    name = c.string(d.get("name", Path(where).stem if where != "config" else "run"), "name")
    seed = c.integer(d.get("seed", 0), "seed")
    out = c.string(d.get("out", f"runs/{name}"), "out")
    licence = str(d.get("licence", ""))
    network = "fusion" in d
    if network and ("model" in d or "regression" in d):
        raise c.fail("model" if "model" in d else "regression", "a [fusion] run has no [model] or [regression] table")
    finetune, face = "finetune" in d, "face_cnn" in d
    for own in ("finetune", "face_cnn"):
        if own in d and (bad := [k for k in ("model", "regression", "fusion", "finetune", "face_cnn") if k in d and k != own]):
            raise c.fail(bad[0], f"a [{own}] run has no [model], [regression], [fusion] or other training table")
    data = _data(c, c.table(d["data"], "data"), network, finetune or face)
    pd = d.get("protocol", {})
    plist = pd if isinstance(pd, list) else [pd]
    if not plist:
        raise c.fail("protocol", "an empty list of protocols")
    protocols = tuple(_protocol(c, p, "protocol" if len(plist) == 1 else f"protocol[{i}]") for i, p in enumerate(plist))
    if len({p.name for p in protocols}) != len(protocols):
        raise c.fail("protocol", "a protocol is listed twice")
    if network:
        return TrainConfig(name, data, protocols[0], None, seed, out, fusion=_fusion(c, d["fusion"], seed),
                           extra_protocols=protocols[1:], licence=licence)
    if finetune:
        return TrainConfig(name, data, protocols[0], None, seed, out, finetune=_finetune(c, d["finetune"], data.corpora),
                           extra_protocols=protocols[1:], licence=licence)
    if face:
        return TrainConfig(name, data, protocols[0], None, seed, out, face_cnn=_face_cnn(c, d["face_cnn"]),
                           extra_protocols=protocols[1:], licence=licence)
    model = _model(c, d.get("model", {}), data.corpora)
    regression = _regression(c, d["regression"]) if "regression" in d else None
    return TrainConfig(name, data, protocols[0], model, seed, out, regression=regression,
                       extra_protocols=protocols[1:], licence=licence)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config (TOML)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"config {path} cannot be read ({e})") from e
    return loads_config(text, str(path))


def loads_config(text: str, where: str = "config") -> TrainConfig:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{where} is not valid TOML: {e}") from e
    return config_from_dict(d, where)


# ------------------------------------------------------------------------------------------- writing


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """A JSON-able dict of ``cfg`` in the TOML schema (defaults left out where the schema has them)."""
    dc = cfg.data
    data: dict[str, Any] = {"corpora": list(dc.corpora), "root": dc.root}
    if dc.extractor is not None:
        data["extractor"] = dc.extractor
    if dc.train_views:
        data["train_views"] = list(dc.train_views)
    if dc.cache is not None:
        data["cache"] = dc.cache
    if dc.limit is not None:
        data["limit"] = dc.limit
    if dc.normalize != "none":
        data["normalize"] = dc.normalize
    if dc.labels != "canonical":
        data["labels"] = dc.labels
    if dc.modalities:
        data["modalities"] = dict(dc.modalities)
    protos = [{"name": p.name, "params": dict(p.params)} for p in cfg.protocols]
    out: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed, "out": cfg.out}
    if cfg.licence:
        out["licence"] = cfg.licence
    out |= {"data": data, "protocol": protos[0] if len(protos) == 1 else protos}
    if cfg.model is not None:
        m = cfg.model
        cw = ([w or "none" for w in m.class_weight] if isinstance(m.class_weight, tuple) else m.class_weight or "none")
        model: dict[str, Any] = {"kind": m.kind, "C_grid": list(m.C_grid), "class_weight": cw}
        if m.corpus_weight:
            model["corpus_weight"] = {k: list(v) for k, v in m.corpus_weight}
        model["select"] = m.select if isinstance(m.select, str) else dict(m.select)
        model["select_folds"] = m.select_folds
        model["calibrate"] = m.calibrate
        out["model"] = model
    if cfg.regression is not None:
        rc = cfg.regression
        out["regression"] = {"alpha_grid": list(rc.alpha_grid), "val_fraction": rc.val_fraction,
                             "val_group": rc.val_group} | {t: dict(cm) for t, cm in rc.targets}
    if cfg.fusion is not None:
        out["fusion"] = {"model": cfg.fusion.model} | dict(cfg.fusion.params) | {
            "train": dataclasses.asdict(cfg.fusion.train)}
    if cfg.finetune is not None:
        ft = dataclasses.asdict(cfg.finetune)
        out["finetune"] = ft | {"targets": list(ft["targets"]), "per_epoch": dict(cfg.finetune.per_epoch),
                                "select": dict(cfg.finetune.select),
                                "regress": {k: list(v) for k, v in cfg.finetune.regress}}
    if cfg.face_cnn is not None:
        out["face_cnn"] = dataclasses.asdict(cfg.face_cnn)
    return out


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest round-tripping form: "0.001", "1e-05", "1.0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def _key(k: str) -> str:
    return k if k and all(ch.isalnum() or ch in "-_" for ch in k) and k.isascii() else json.dumps(k)


def _table(name: str, d: dict[str, Any], array: bool = False) -> list[str]:
    """``[name]`` (or ``[[name]]``) with its scalar keys, then its sub-tables; ``None`` values are left out."""
    lines = ["", f"[[{name}]]" if array else f"[{name}]"]
    subs = {k: v for k, v in d.items() if isinstance(v, dict) and k in _SUBTABLES}
    lines += [f"{_key(k)} = {_value(v)}" for k, v in d.items() if k not in subs and v is not None]
    for k, v in subs.items():
        lines += _table(f"{name}.{k}", v)
    return lines


_SUBTABLES = {"params", "modalities", "train", "valence", "arousal", "corpus_weight", "select", "per_epoch", "regress"}


def dump_config(cfg: TrainConfig) -> str:
    """TOML text of ``cfg``; ``load_config`` of it gives back an equal config."""
    d = config_to_dict(cfg)
    lines = [f"{k} = {_value(d[k])}" for k in ("name", "seed", "out", "licence") if k in d]
    lines += _table("data", d["data"])
    protos = d["protocol"] if isinstance(d["protocol"], list) else [d["protocol"]]
    for p in protos:
        lines += _table("protocol", p, array=len(protos) > 1)
    for key in ("model", "regression", "fusion", "finetune", "face_cnn"):
        if key in d:
            lines += _table(key, d[key])
    return "\n".join(lines) + "\n"
