"""Exceptions. Every message names the cause and the fix; nothing here is an ``assert``."""

from __future__ import annotations


class EmofuseError(Exception):
    """Base class: a problem the user can act on."""


class InputError(EmofuseError):
    """An input that cannot be analyzed (missing, empty, unreadable, unsupported, too long)."""


class MissingComponentError(EmofuseError):
    """A model file or optional dependency is not installed; the message names the package."""


class ChecksumError(EmofuseError):
    """A weight file does not match its recorded sha256."""
