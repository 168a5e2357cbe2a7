"""Shared fixtures. Real media come from registry wheels (scripts/fetch_media.py, run by `make test`);
corpora from ../shared/data (or $EMOFUSE_DATA). Tests that need either skip with the reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT / ".cache" / "media"
DATA = Path(os.environ.get("EMOFUSE_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def media() -> Path:
    if not (MEDIA / "two_cities.wav").exists():
        pytest.skip("real media missing: run `python scripts/fetch_media.py` (make test does)")
    return MEDIA


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"corpora not found at {DATA}; set EMOFUSE_DATA to ../shared/data")
    return DATA
