"""Training-run configuration: a small TOML file read with :mod:`tomllib` and written back by
:func:`dump_config` so that ``load_config`` of the dump equals the original (the run's record).

    name = "voice-ravdess-kfold"
    seed = 0
    out = "runs/voice-ravdess-kfold"

    [data]
    corpora = ["ravdess"]          # several for loco
    root = "../shared/data"        # relative paths are relative to the current directory
    extractor = "voice-whisper-tiny.en"
    cache = ".cache/features"
    # limit = 300                  # optional: a seeded subsample of N labelled items per corpus
    # normalize = "speaker"        # optional: z-score features per speaker or per corpus (see run.py)

    [protocol]
    name = "kfold"                 # emofuse.training.protocols.PROTOCOLS

    [protocol.params]              # keyword arguments of the protocol
    val_speakers = 0.2

    [model]
    kind = "linear"
    C_grid = [0.001, 0.01, 0.1, 1.0]
    class_weight = "balanced"      # or "none"

Every error is an :class:`emofuse.errors.InputError` naming the file and the bad key / value.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["DataConfig", "ModelConfig", "ProtocolConfig", "TrainConfig", "dump_config", "load_config",
           "config_from_dict", "config_to_dict"]

MODEL_KINDS = ("linear",)
CLASS_WEIGHTS = ("balanced", "none")
NORMALIZE = ("none", "corpus", "speaker")


@dataclass(frozen=True)
class DataConfig:
    corpora: tuple[str, ...]
    root: str
    extractor: str
    cache: str = ".cache/features"
    limit: int | None = None  # a seeded subsample of N labelled items per corpus (smoke runs)
    normalize: str = "none"  # "none", "corpus" or "speaker": z-score features within each group


@dataclass(frozen=True)
class ProtocolConfig:
    name: str = "kfold"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "linear"
    C_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    class_weight: str | None = "balanced"


@dataclass(frozen=True)
class TrainConfig:
    name: str
    data: DataConfig
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    out: str = "runs/run"


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


def config_from_dict(d: dict[str, Any], where: str = "config") -> TrainConfig:
    """Validate a parsed TOML document and build the :class:`TrainConfig`."""
    from ..corpora import CORPORA
    from ..extract import EXTRACTORS
    from .protocols import PROTOCOLS

    c = _Checker(where)
    c.table(d, "<top>")
    c.keys(d, "", ("name", "seed", "out", "data", "protocol", "model"), ("name", "data"))
    name = c.string(d["name"], "name")
    seed = c.integer(d.get("seed", 0), "seed")
    out = c.string(d.get("out", f"runs/{name}"), "out")

    dd = c.table(d["data"], "data")
    c.keys(dd, "data.", ("corpora", "root", "extractor", "cache", "limit", "normalize"),
           ("corpora", "root", "extractor"))
    corpora = dd["corpora"]
    if isinstance(corpora, str):
        corpora = [corpora]
    if not isinstance(corpora, list) or not corpora:
        raise c.fail("data.corpora", f"must be a non-empty list of corpus names, not {dd['corpora']!r}")
    for i, cn in enumerate(corpora):
        c.string(cn, f"data.corpora[{i}]")
        if cn.strip().lower() not in CORPORA:
            raise c.fail(f"data.corpora[{i}]", f"unknown corpus {cn!r}; known: {', '.join(sorted(CORPORA))}")
    if len(set(corpora)) != len(corpora):
        raise c.fail("data.corpora", f"a corpus is listed twice: {corpora!r}")
    extractor = c.string(dd["extractor"], "data.extractor")
    if extractor not in EXTRACTORS:
        raise c.fail("data.extractor", f"unknown extractor {extractor!r}; known: {', '.join(EXTRACTORS)}")
    limit = dd.get("limit")
    if limit is not None:
        limit = c.integer(limit, "data.limit", minimum=1)
    norm = dd.get("normalize", "none")
    if norm not in NORMALIZE:
        raise c.fail("data.normalize", f"must be one of {NORMALIZE}, not {norm!r}")
    data = DataConfig(tuple(corpora), c.string(dd["root"], "data.root"), extractor,
                      c.string(dd.get("cache", ".cache/features"), "data.cache"), limit, norm)

    pd = c.table(d.get("protocol", {}), "protocol")
    c.keys(pd, "protocol.", ("name", "params"), ())
    pname = c.string(pd.get("name", "kfold"), "protocol.name").strip().lower()
    if pname not in PROTOCOLS:
        raise c.fail("protocol.name", f"unknown protocol {pname!r}; known: {', '.join(PROTOCOLS)}")
    params = c.table(pd.get("params", {}), "protocol.params")
    for k, v in params.items():
        if k == "seed":
            raise c.fail("protocol.params.seed", "set the top-level `seed` instead (it seeds the protocol)")
        if not isinstance(v, (bool, int, float, str)):
            raise c.fail(f"protocol.params.{k}", f"must be a number, string or boolean, not {v!r}")
    protocol = ProtocolConfig(pname, dict(params))

    md = c.table(d.get("model", {}), "model")
    c.keys(md, "model.", ("kind", "C_grid", "class_weight"), ())
    kind = c.string(md.get("kind", "linear"), "model.kind")
    if kind not in MODEL_KINDS:
        raise c.fail("model.kind", f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    grid = md.get("C_grid", list(ModelConfig.C_grid))
    if not isinstance(grid, list) or not grid:
        raise c.fail("model.C_grid", f"must be a non-empty list of positive numbers, not {grid!r}")
    for i, v in enumerate(grid):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise c.fail(f"model.C_grid[{i}]", f"must be a positive finite number, not {v!r}")
    cw = md.get("class_weight", "balanced")
    if cw not in CLASS_WEIGHTS:
        raise c.fail("model.class_weight", f"must be one of {CLASS_WEIGHTS}, not {cw!r}")
    model = ModelConfig(kind, tuple(float(v) for v in grid), None if cw == "none" else cw)
    return TrainConfig(name, data, protocol, model, seed, out)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config (TOML)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config {path} does not exist")
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"config {path} is not valid TOML: {e}") from e
    return config_from_dict(d, str(path))


def loads_config(text: str, where: str = "config") -> TrainConfig:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{where} is not valid TOML: {e}") from e
    return config_from_dict(d, where)


# ------------------------------------------------------------------------------------------- writing


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """A JSON-able dict of ``cfg`` in the TOML schema (``class_weight`` None written as ``"none"``)."""
    data: dict[str, Any] = {"corpora": list(cfg.data.corpora), "root": cfg.data.root,
                            "extractor": cfg.data.extractor, "cache": cfg.data.cache}
    if cfg.data.limit is not None:
        data["limit"] = cfg.data.limit
    if cfg.data.normalize != "none":
        data["normalize"] = cfg.data.normalize
    return {
        "name": cfg.name, "seed": cfg.seed, "out": cfg.out, "data": data,
        "protocol": {"name": cfg.protocol.name, "params": dict(cfg.protocol.params)},
        "model": {"kind": cfg.model.kind, "C_grid": list(cfg.model.C_grid),
                  "class_weight": cfg.model.class_weight or "none"},
    }


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
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def _key(k: str) -> str:
    return k if k and all(ch.isalnum() or ch in "-_" for ch in k) and k.isascii() else json.dumps(k)


def dump_config(cfg: TrainConfig) -> str:
    """TOML text of ``cfg``; ``load_config`` of it gives back an equal config."""
    d = config_to_dict(cfg)
    lines = [f"{k} = {_value(d[k])}" for k in ("name", "seed", "out")]
    lines += ["", "[data]"] + [f"{_key(k)} = {_value(v)}" for k, v in d["data"].items()]
    lines += ["", "[protocol]", f"name = {_value(d['protocol']['name'])}"]
    lines += ["", "[protocol.params]"] + [f"{_key(k)} = {_value(v)}" for k, v in d["protocol"]["params"].items()]
    lines += ["", "[model]"] + [f"{_key(k)} = {_value(v)}" for k, v in d["model"].items()]
    return "\n".join(lines) + "\n"
