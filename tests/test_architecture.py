"""Layering: analysis code never imports training code (statically, including imports inside functions,
and at run time), and every registry answers an unknown name with the same error listing the choices."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from emofuse.errors import InputError, UnknownNameError

SRC = Path(__file__).resolve().parent.parent / "src" / "emofuse"
# Everything but the training package and the CLI (which dispatches `train` / `evaluate` to it).
ANALYSIS = sorted(p for p in SRC.rglob("*.py") if "training" not in p.relative_to(SRC).parts and p.name != "cli.py")


def _imports(path: Path) -> set[str]:
    """Absolute names of every emofuse module ``path`` imports, wherever the import statement is."""
    pkg = ["emofuse", *path.relative_to(SRC).parent.parts]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import training`
    return {m for m in out if m == "emofuse" or m.startswith("emofuse.")}


def test_the_checked_modules_are_the_analysis_side() -> None:
    names = {p.relative_to(SRC).as_posix() for p in ANALYSIS}
    assert {"pipeline.py", "segment_fusion.py", "experts.py", "checkpoints.py", "asr.py", "media.py",
            "extractors.py", "features/voice.py", "features/face.py", "features/text.py", "networks/base.py"} <= names


@pytest.mark.parametrize("path", ANALYSIS, ids=lambda p: p.relative_to(SRC).as_posix())
def test_analysis_never_imports_training(path: Path) -> None:
    bad = sorted(m for m in _imports(path) if m == "emofuse.training" or m.startswith("emofuse.training."))
    assert not bad, f"{path.relative_to(SRC)} imports {bad}: move what both sides need out of emofuse.training"


def test_the_import_scanner_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    f = SRC / "features" / "_probe_for_test.py"
    f.write_text("def g():\n    from ..training import run\n    from .. import training\n", encoding="utf-8")
    try:
        assert {"emofuse.training", "emofuse.training.run"} <= _imports(f)
    finally:
        f.unlink()


def test_analysis_at_run_time_loads_no_training_module() -> None:
    code = ("import sys, emofuse, emofuse.pipeline, emofuse.segment_fusion, emofuse.checkpoints, emofuse.extract, "
            "emofuse.report\n"
            "from emofuse.experts import shipped_head\n"
            "h = shipped_head('voice-whisper-base'); emofuse.segment_fusion.build('confidence')\n"
            "print(sorted(m for m in sys.modules if m.startswith('emofuse.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _registries() -> dict[str, object]:
    from emofuse.corpora import CORPORA
    from emofuse.extractors import EXTRACTORS
    from emofuse.features.text import ENCODERS
    from emofuse.segment_fusion import RULES
    from emofuse.store import COMPONENTS
    from emofuse.training.protocols import PROTOCOLS

    return {"corpus": CORPORA, "extractor": EXTRACTORS, "text encoder": ENCODERS, "fusion rule": RULES,
            "model component": COMPONENTS, "protocol": PROTOCOLS}


@pytest.mark.parametrize("kind", sorted(_registries()))
def test_every_registry_refuses_unknown_names_with_the_choices(kind: str) -> None:
    reg = _registries()[kind]
    with pytest.raises(UnknownNameError) as e:
        reg["no-such-name"]  # type: ignore[index]
    msg = str(e.value)
    assert msg.startswith(f"unknown {kind} 'no-such-name'; known: ") and all(n in msg for n in reg)  # type: ignore[union-attr]
    assert isinstance(e.value, InputError) and e.value.choices == tuple(sorted(reg))  # type: ignore[arg-type]


def test_network_registry_refuses_unknown_names() -> None:
    pytest.importorskip("torch")
    from emofuse.networks import NETWORKS, FusionConfig, build

    with pytest.raises(UnknownNameError, match="unknown fusion network 'nope'; known: concat"):
        build("nope", FusionConfig(dims={"a": 2}))
    assert set(NETWORKS) == {"late", "concat", "pairwise", "gated", "transformer_gate", "talking_heads", "mult",
                             "self_mm"}
