"""Exceptions. Every message names the cause and the fix; nothing here is an ``assert``.

The command line maps :class:`EmofuseError` to a one-line message and exit status 2; any other exception
is a bug in emofuse and gets a short message asking for a bug report (never a traceback).
"""

from __future__ import annotations

from collections.abc import Iterable


class EmofuseError(Exception):
    """Base class: a problem the user can act on."""


class InputError(EmofuseError, ValueError):
    """An input or option that cannot be used (missing, empty, unreadable, unsupported, out of range)."""


class UnknownNameError(InputError):
    """A name that no registry knows (corpus, extractor, encoder, protocol, network, fusion rule, component);
    the message lists the registered names."""

    def __init__(self, kind: str, name: object, choices: Iterable[str], hint: str = "") -> None:
        self.kind, self.name, self.choices = kind, name, tuple(sorted(choices))
        msg = f"unknown {kind} {name!r}; known: {', '.join(self.choices) or '(none)'}"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class MissingComponentError(EmofuseError):
    """A model file or optional dependency is not installed; the message names the package."""


class ChecksumError(EmofuseError):
    """A weight file does not match its recorded sha256."""
