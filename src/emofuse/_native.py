"""Silencing native libraries (mediapipe / LiteRT / absl) that print to the C-level stderr while they
load, before any log level can be set: their banners would otherwise interleave with our output."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Iterator

_lock = threading.Lock()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (Python-level errors still raise)."""
    if os.environ.get("EMOFUSE_NATIVE_LOGS"):
        yield
        return
    with _lock:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
