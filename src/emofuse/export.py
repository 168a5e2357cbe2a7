"""emofuse export: the shipped expert heads and trained fusion networks as ONNX graphs, each checked against
the model it came from before it is kept.

A graph ``NAME.onnx`` comes with a sidecar ``NAME.onnx.json`` (format ``emofuse-onnx/1``): what it is (a head
or a network), the metadata of its source (labels, feature specs with their standardisation, config), the
sha256 of the source and of the graph, its inputs and outputs, and the check's figures. A network graph takes
every modality of its checkpoint: ``x_<m>`` (``[B, d]``, or ``[B, T, d]`` for a sequence) and ``mask_<m>``
(``bool[B]``, present per sample); an absent modality is fed zeros with its mask False, which the networks
treat exactly as a removed one. Outputs: ``logits`` ``[B, C]`` and, when trained with valence, ``valence``
``[B]``. ``analyze --checkpoint NAME.onnx`` runs it with ONNX Runtime: no torch at analysis time.

Graphs are fp32. ONNX Runtime's int8 quantiser needs the ``onnx`` package, which this environment cannot
install beside mediapipe (protobuf pins); ``scripts/quantize_face.py`` shows the two-Python route the face
network took. These graphs cost well under a millisecond per segment in fp32 (printed), so int8 would buy
nothing the analysis can feel.

Exporting needs torch (set-up time); running the graphs does not.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, MissingComponentError
from .experts import softmax
from .store import sha256_file as _sha256

ONNX_FORMAT = "emofuse-onnx/1"
PROBES = 512  # random standardised inputs each graph is compared on
TOLERANCE = 1e-4  # largest |probability difference| a kept graph may show


@dataclass(frozen=True)
class Exported:
    source: str
    graph: Path
    kind: str  # head | network
    max_diff: float  # largest |probability difference| against the source model on the probes
    agreement: float  # share of probes with the same top class
    probes: int
    ms_source: float  # ms per probe, the source model (NumPy head / torch network), batch of 1
    ms_graph: float  # ms per probe, ONNX Runtime, batch of 1


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingComponentError("emofuse export needs torch once (CPU build): pip install torch==2.13.0") from None
    return torch


def _session(path: Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # one segment at a time: threads cost more than they give
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _per_item_ms(fn: Any, items: list[Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for it in items:
            fn(it)
        best = min(best, (time.perf_counter() - t) / len(items) * 1000)
    return best


def _write_sidecar(graph: Path, doc: dict[str, Any]) -> None:
    doc = {"format": ONNX_FORMAT, **doc, "graph_sha256": _sha256(graph)}
    graph.with_name(graph.name + ".json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def read_sidecar(graph: str | Path) -> dict[str, Any]:
    """The sidecar of an exported graph, checked against the graph's sha256 (a graph whose sidecar is missing,
    stale or of another format is refused)."""
    graph = Path(graph)
    side = graph.with_name(graph.name + ".json")
    if not graph.is_file():
        raise InputError(f"{graph}: no such ONNX graph; make one with `emofuse export CHECKPOINT --out DIR`")
    if not side.is_file():
        raise InputError(f"{graph} has no sidecar {side.name} (what the graph's inputs are); export it again with "
                         "`emofuse export`")
    try:
        doc = json.loads(side.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{side} is not readable JSON ({e}); export the graph again") from None
    if not isinstance(doc, dict) or doc.get("format") != ONNX_FORMAT:
        raise InputError(f"{side} is not an {ONNX_FORMAT} sidecar; export the graph again with `emofuse export`")
    if doc.get("graph_sha256") != _sha256(graph):
        raise InputError(f"{graph} does not match its sidecar's sha256 (the graph was changed or replaced); export "
                         "it again")
    return doc


# ------------------------------------------------------------------------------------------------ heads

def export_head(source: str | Path, dst: Path) -> Exported:
    """A linear head (``emofuse-head/1``) as ``x [n, dim] -> probs [n, n_labels]`` (its own labels, the
    standardisation and temperature inside) and, when it has one, ``va [n, 2]``."""
    torch = _torch()
    from .checkpoints import load_head
    from .features.text import ONNX_OPSET, _without_onnx_package

    head = load_head(source)

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            f = lambda a: torch.nn.Parameter(torch.from_numpy(np.asarray(a, np.float32)), requires_grad=False)  # noqa: E731
            self.mean, self.scale, self.W, self.b = f(head.mean), f(head.scale), f(head.W), f(head.b)
            self.R = f(head.R) if head.R is not None else None
            self.c = f(head.c) if head.c is not None else None

        def forward(self, x: Any) -> Any:
            z = (x - self.mean) / self.scale
            p = torch.softmax(z @ self.W + self.b, dim=-1)
            if self.R is None:
                return (p,)
            return p, torch.clamp(z @ self.R + self.c, -1.0, 1.0)

    outputs = ["probs"] + (["va"] if head.R is not None else [])
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".partial")
    dim = len(head.mean)
    with torch.no_grad(), _without_onnx_package(), _quiet(torch):
        torch.onnx.export(Head(), (torch.zeros(2, dim),), str(tmp), input_names=["x"], output_names=outputs,
                          dynamic_axes={"x": {0: "n"}, **{o: {0: "n"} for o in outputs}},
                          opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)
    rng = np.random.default_rng(0)
    x = (head.mean + head.scale * rng.standard_normal((PROBES, dim))).astype(np.float32)  # the training spread
    sess = _session(tmp)
    got = sess.run(None, {"x": x})
    want = head.scores(x)
    diff = float(np.abs(got[0] - want).max())
    va = head.predict_va(x)
    if va is not None:
        diff = max(diff, float(np.abs(got[1] - va).max()))
    agree = float((got[0].argmax(1) == want.argmax(1)).mean())
    _check(tmp, str(source), diff)
    tmp.replace(dst)
    items = [x[i:i + 1] for i in range(64)]
    ms_src = _per_item_ms(head.scores, items)
    sess = _session(dst)
    ms_graph = _per_item_ms(lambda v: sess.run(None, {"x": v}), items)
    _write_sidecar(dst, {"kind": "head", "source": Path(source).name, "source_sha256": _sha256(Path(source)),
                         "inputs": {"x": [None, dim]}, "outputs": outputs, "labels": list(head.labels),
                         "feature": head.feature.to_dict(), "meta": head.meta,
                         "check": {"probes": PROBES, "max_diff": diff, "agreement": agree}})
    return Exported(str(source), dst, "head", diff, agree, PROBES, ms_src, ms_graph)


@contextlib.contextmanager
def _quiet(torch: Any) -> Iterator[None]:
    """The tracer warns about every Python-level shape check of the networks' input validation; the graph is
    then compared with the module on other shapes and presence masks, which is what those warnings ask for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter (dynamo needs onnx)
        yield


def _check(tmp: Path, source: str, diff: float) -> None:
    if not diff <= TOLERANCE:  # NaN fails too
        tmp.unlink()
        raise InputError(f"the ONNX graph of {source} differs from it by {diff:.2e} (> {TOLERANCE:g}); it was not "
                         "kept. Please report this with the file")


# ------------------------------------------------------------------------------------------------ networks

def export_network(checkpoint: str | Path, dst: Path) -> Exported:
    """A trained fusion network (``emofuse-fusion/1``) as one graph over all of its modalities with presence
    masks (see the module doc), checked on random probes with random presence patterns."""
    torch = _torch()
    from .checkpoints import FeatureSpec, load_network
    from .features.text import ONNX_OPSET, _without_onnx_package

    model, meta = load_network(checkpoint)
    specs = {m: FeatureSpec.from_dict(meta["features"][m]) for m in model.config.modalities}
    mods = list(specs)
    regression = bool(model.config.regression)
    outputs = ["logits"] + (["valence"] if regression else [])

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, *args: Any) -> Any:
            xs, ks = args[:len(mods)], args[len(mods):]
            out = self.net(dict(zip(mods, xs)), dict(zip(mods, ks)))
            return tuple(out[o] for o in outputs)

    def probe(n: int, t: int, seed: int) -> tuple[list[Any], list[Any]]:
        g = torch.Generator().manual_seed(seed)
        xs = [torch.randn(n, t, s.dim, generator=g) if s.kind == "sequence" else torch.randn(n, s.dim, generator=g)
              for s in specs.values()]
        ks = torch.rand(n, len(mods), generator=g) < 0.6
        ks[torch.arange(n), torch.randint(len(mods), (n,), generator=g)] = True  # at least one present
        return xs, [ks[:, i].contiguous() for i in range(len(mods))]

    names = [f"x_{m}" for m in mods] + [f"mask_{m}" for m in mods]
    axes: dict[str, dict[int, str]] = {f"x_{m}": ({0: "batch", 1: f"steps_{m}"} if s.kind == "sequence" else {0: "batch"})
                                       for m, s in specs.items()}
    axes |= {f"mask_{m}": {0: "batch"} for m in mods} | {o: {0: "batch"} for o in outputs}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".partial")
    graph = Graph().eval()
    xs, ks = probe(3, 4, 1)
    with torch.no_grad(), _without_onnx_package(), _quiet(torch):
        torch.onnx.export(graph, (*xs, *ks), str(tmp), input_names=names, output_names=outputs, dynamic_axes=axes,
                          opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)
    sess = _session(tmp)
    diffs, agree, n = [], [], 0
    for seed, t in ((2, 1), (3, 7)):  # other sequence lengths than the traced one
        xs, ks = probe(PROBES // 2, t, seed)
        with torch.no_grad():
            want = [o.numpy() for o in graph(*xs, *ks)]
        got = sess.run(None, {k: v.numpy() for k, v in zip(names, [*xs, *ks])})
        pw, pg = softmax(want[0]), softmax(got[0])
        diffs.append(float(np.abs(pw - pg).max()))
        if regression:
            diffs.append(float(np.abs(want[1] - got[1]).max()))
        agree.append(float((pw.argmax(1) == pg.argmax(1)).sum()))
        n += len(pw)
    diff = max(diffs)
    _check(tmp, str(checkpoint), diff)
    tmp.replace(dst)
    xs, ks = probe(64, 3, 4)
    items = [([x[i:i + 1] for x in xs], [k[i:i + 1] for k in ks]) for i in range(64)]
    with torch.no_grad():
        ms_src = _per_item_ms(lambda it: graph(*it[0], *it[1]), items)
    sess = _session(dst)
    feeds = [dict(zip(names, [v.numpy() for v in [*a, *b]])) for a, b in items]
    ms_graph = _per_item_ms(lambda f: sess.run(None, f), feeds)
    _write_sidecar(dst, {"kind": "network", "source": Path(checkpoint).name,
                         "source_sha256": _sha256(Path(checkpoint)),
                         "inputs": {f"x_{m}": ([None, None, s.dim] if s.kind == "sequence" else [None, s.dim])
                                    for m, s in specs.items()} | {f"mask_{m}": [None] for m in mods},
                         "outputs": outputs, "meta": meta,
                         "check": {"probes": n, "max_diff": diff, "agreement": sum(agree) / n}})
    return Exported(str(checkpoint), dst, "network", diff, sum(agree) / n, n, ms_src, ms_graph)


def shipped_heads() -> list[Path]:
    """The expert heads inside the package (``emofuse-head/1`` files)."""
    from .checkpoints import HEAD_FORMAT, _read_doc
    from .experts import WEIGHTS_DIR

    out = []
    for p in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        try:
            _read_doc(p, HEAD_FORMAT, "head")
        except InputError:
            continue  # the face network, LoRA adapters: not linear heads
        out.append(p)
    return out


def export_all(out: Path, checkpoints: list[Path], heads: bool = True) -> list[Exported]:
    """Every shipped head (into ``out/heads``) and each checkpoint (``out/<stem>.onnx``)."""
    from .checkpoints import read_network_meta

    for c in checkpoints:  # every checkpoint checked before the first export
        read_network_meta(c)
    stems = [c.stem for c in checkpoints]
    if len(set(stems)) != len(stems):
        raise InputError(f"checkpoints {stems} share a file name; their graphs would overwrite each other")
    done = [export_head(p, out / "heads" / f"{p.stem}.onnx") for p in shipped_heads()] if heads else []
    return done + [export_network(c, out / f"{c.stem}.onnx") for c in checkpoints]
