"""emofuse export: every registered fusion network and every shipped head as an ONNX graph that computes what
its source does, and an analysis that fuses with the graph without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emofuse import checkpoints as ck
from emofuse.errors import InputError
from emofuse.export import export_head, export_network, read_sidecar, shipped_heads
from emofuse.networks import NETWORKS, FusionConfig, build

SOURCES = {"voice": ("voice-whisper-base-seq", 6, "sequence"), "face": ("face-fer", 7, "vector"),
           "text": ("text-minilm-l6", 5, "vector")}


def _checkpoint(tmp: Path, name: str) -> Path:
    dims = {m: d for m, (_, d, _) in SOURCES.items()}
    model = build(name, FusionConfig(dims=dims, n_classes=3, hidden=16, heads=2, modality_dropout=0.2))
    rng = np.random.default_rng(1)
    feats = {m: ck.FeatureSpec(src, d, kind=kind, mean=tuple(rng.normal(size=d)), std=tuple(rng.uniform(0.5, 2, d))
                               ).to_dict() for m, (src, d, kind) in SOURCES.items()}
    return ck.save_network(tmp / f"{name}.safetensors", model, name,
                           {"features": feats, "labels": ["calm", "angry", "surprised"]})


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_network_exports_and_fuses_as_in_torch(tmp_path: Path, name: str) -> None:
    from emofuse.segment_fusion import NetworkFusion

    e = export_network(_checkpoint(tmp_path, name), tmp_path / f"{name}.onnx")
    assert e.max_diff < 1e-4 and e.agreement == 1.0 and e.probes == 512
    side = read_sidecar(e.graph)
    assert side["kind"] == "network" and side["meta"]["model"] == name
    supplied = {s for s, _, _ in SOURCES.values()}
    torch_fuse = NetworkFusion(tmp_path / f"{name}.safetensors", supplied=supplied)
    onnx_fuse = NetworkFusion(e.graph, name, supplied=supplied)
    rng = np.random.default_rng(0)
    full = {"voice-whisper-base-seq": rng.normal(size=(4, 6)), "face-fer": rng.normal(size=7),
            "text-minilm-l6": rng.normal(size=5)}
    for present in (full, {k: v for k, v in full.items() if k != "face-fer"}, {"face-fer": full["face-fer"]}):
        a, b = torch_fuse({}, features=present), onnx_fuse({}, features=present)
        assert a is not None and b is not None and a.label == b.label and a.method == b.method == name
        np.testing.assert_allclose(list(a.probs.values()), list(b.probs.values()), atol=1e-5)
        assert abs(a.valence - b.valence) < 1e-5 and a.weights == b.weights


def test_the_shipped_heads_are_found() -> None:
    heads = shipped_heads()
    assert {p.stem for p in heads} >= {"voice-whisper-base", "text-minilm-l6-emo", "text-e5-small"}


def test_a_head_graph_matches_the_numpy_head(tmp_path: Path) -> None:
    import onnxruntime as ort

    from emofuse.experts import shipped_head

    src = next(p for p in shipped_heads() if p.stem == "voice-whisper-base")
    e = export_head(src, tmp_path / "voice.onnx")
    assert e.max_diff < 1e-4 and e.agreement == 1.0
    head = shipped_head("voice-whisper-base")
    x = np.random.default_rng(3).normal(head.mean, head.scale, size=(9, len(head.mean))).astype(np.float32)
    got = ort.InferenceSession(str(e.graph), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(got[0], head.scores(x), atol=1e-5)
    assert read_sidecar(e.graph)["labels"] == list(head.labels)


def test_graphs_whose_sidecar_is_missing_stale_or_of_a_head_are_refused(tmp_path: Path) -> None:
    from emofuse.segment_fusion import NetworkFusion

    e = export_network(_checkpoint(tmp_path, "late"), tmp_path / "late.onnx")
    h = export_head(shipped_heads()[0], tmp_path / "head.onnx")
    with pytest.raises(InputError, match="expert head, not of a fusion network"):
        NetworkFusion(h.graph)
    with pytest.raises(InputError, match="does not match .*'late' network"):
        NetworkFusion(e.graph, "gated")
    data = e.graph.read_bytes()
    e.graph.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(InputError, match="does not match its sidecar's sha256"):
        NetworkFusion(e.graph)
    e.graph.with_name("late.onnx.json").unlink()
    with pytest.raises(InputError, match="no sidecar"):
        read_sidecar(e.graph)
    with pytest.raises(InputError, match="no such ONNX graph"):
        read_sidecar(tmp_path / "nothing.onnx")


def test_the_analysis_fuses_with_a_graph_without_torch(tmp_path: Path) -> None:
    e = export_network(_checkpoint(tmp_path, "gated"), tmp_path / "gated.onnx")
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now fails
from emofuse.segment_fusion import build
fuse = build(None, {str(e.graph)!r}, supplied={{"face-fer", "text-minilm-l6"}})
f = fuse({{}}, features={{"face-fer": [0.1] * 7, "text-minilm-l6": [0.2] * 5}})
print(f.label, f.method, sorted(f.weights))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    label, method, weights = r.stdout.split(maxsplit=2)
    assert method == "gated" and weights.strip() == "['face', 'text']"


def test_export_command(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path, "concat")
    r = subprocess.run([sys.executable, "-m", "emofuse.cli", "export", str(ckpt), "--out", str(tmp_path / "g")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g" / "concat.onnx").is_file() and (tmp_path / "g" / "heads" / "voice-whisper-base.onnx").is_file()
    assert "concat.onnx" in r.stdout and "1.0000" in r.stdout
    side = json.loads((tmp_path / "g" / "concat.onnx.json").read_text())
    assert side["source_sha256"] == __import__("hashlib").sha256(ckpt.read_bytes()).hexdigest()
    bad = subprocess.run([sys.executable, "-m", "emofuse.cli", "export", str(tmp_path / "none.safetensors"),
                          "--out", str(tmp_path / "h")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "none.safetensors" in bad.stderr and not (tmp_path / "h").exists()
