"""The model store: registry components, install hints, checksums, the joined Whisper base."""

from __future__ import annotations

from pathlib import Path

import pytest

from emofuse import store
from emofuse.errors import ChecksumError, MissingComponentError, UnknownNameError


def test_every_component_resolves_and_verifies() -> None:
    for name, c in store.COMPONENTS.items():
        try:
            assert store.resolve(name).exists()
        except MissingComponentError:
            if not c.optional:  # the MPNet teacher's pieces are not part of `make setup`
                raise


def test_a_zip_split_across_packages_is_joined_unpacked_and_verified(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("enc/model.safetensors", b"weights" * 1000)
        z.writestr("enc/tokenizer.json", "{}")
    blob = buf.getvalue()
    pieces = [tmp_path / "p1", tmp_path / "p2"]
    pieces[0].write_bytes(blob[:1000])
    pieces[1].write_bytes(blob[1000:])
    import hashlib

    c = store.Component("zipped", "zip-part-1", "1.0", "x", "enc/model.safetensors",
                        hashlib.sha256(b"weights" * 1000).hexdigest(),
                        parts=(("zip-part-1", "p1"), ("zip-part-2", "p2")), archive=True)
    monkeypatch.setitem(store.COMPONENTS, "zipped", c)
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(store, "_verified", {})
    monkeypatch.setattr(store, "_dist_file", lambda dist, rel, comp: tmp_path / rel)
    d = store.resolve("zipped")
    assert d == tmp_path / "cache" / "zipped" / "enc" and (d / "tokenizer.json").exists()
    assert not list((tmp_path / "cache" / "zipped").glob("*.partial"))
    assert "--no-deps 'zip-part-1==1.0' 'zip-part-2==1.0'" in store._install_hint(c)
    # pieces in the wrong order are not a zip: named, with the reinstall command
    c2 = store.Component("zipped2", "zip-part-1", "1.0", "x", "enc/model.safetensors", c.sha256,
                         parts=(("zip-part-2", "p2"), ("zip-part-1", "p1")), archive=True)
    monkeypatch.setitem(store.COMPONENTS, "zipped2", c2)
    with pytest.raises(ChecksumError, match=r"not a valid zip \(.*\); reinstall them: pip install --no-deps"):
        store.resolve("zipped2")


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
