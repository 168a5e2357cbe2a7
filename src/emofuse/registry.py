"""One registry type for every extension point: a ``dict`` from name to entry whose failed lookup raises
:class:`~emofuse.errors.UnknownNameError` listing the registered names.

Registries: corpora (``emofuse.corpora.CORPORA``), feature extractors (``emofuse.extractors.EXTRACTORS``),
text encoders (``emofuse.features.text.ENCODERS``), model components (``emofuse.store.COMPONENTS``),
evaluation protocols (``emofuse.training.protocols.PROTOCOLS``), fusion networks
(``emofuse.networks.NETWORKS``) and the analysis's fusion rules (``emofuse.segment_fusion.RULES``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """``REG[name]`` -> entry, or UnknownNameError naming ``kind`` and the choices; ``register`` adds one."""

    def __init__(self, kind: str, entries: dict[str, T] | None = None, hint: str = "") -> None:
        super().__init__(entries or {})
        self.kind = kind
        self.hint = hint

    def __missing__(self, name: str) -> T:
        raise UnknownNameError(self.kind, name, self.keys(), self.hint)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("name")`` adds the decorated object under ``name`` (once)."""

        def deco(obj: T) -> T:
            if name in self and self[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = obj
            return obj

        return deco
