"""Manifest rows (:class:`Item`) and lists of them (:class:`Manifest`), shared by every corpus loader.

A manifest is the one place where a corpus's own conventions (file names, label codes, rating scales,
split names) are turned into the project's: canonical labels from :data:`emofuse.taxonomy.EMOTIONS`,
valence/arousal in [-1, 1], splits ``train``/``dev``/``val``/``test``. Loaders never decode media.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import InputError
from ..taxonomy import EMOTIONS

SPLITS = ("train", "dev", "val", "test")


@dataclass(frozen=True)
class Item:
    """One manifest row.

    ``id`` is unique within its corpus (``(corpus, id)`` is unique across corpora); ``paths`` are the
    media files of the item (empty for text-only corpora; never opened by the loader); ``split`` is one
    of :data:`SPLITS` or None; ``fold`` is the cross-validation fold in which the item is a *test* item
    (EmoBox folds, see :mod:`.ravdess`), or None; ``label`` is a canonical label or None (unlabelled,
    dropped by the corpus's stated rule, or ambiguous); ``original_label`` is the corpus's own
    annotation as a string (the key of the module's ``LABEL_MAP`` for categorical corpora);
    ``valence``/``arousal`` are in [-1, 1] when given (each module states its rescaling); ``extra``
    holds JSON-serialisable corpus-specific fields (it does not take part in hashing).
    """

    id: str
    corpus: str
    paths: tuple[Path, ...] = ()
    text: str | None = None
    speaker: str | None = None
    split: str | None = None
    fold: int | None = None
    label: str | None = None
    original_label: str = ""
    valence: float | None = None
    arousal: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(Path(p) for p in self.paths))
        if self.label is not None and self.label not in EMOTIONS:
            raise ValueError(f"item {self.id!r}: label {self.label!r} is not one of {EMOTIONS}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"item {self.id!r}: split {self.split!r} is not one of {SPLITS}")
        for name in ("valence", "arousal"):
            v = getattr(self, name)
            if v is not None and not -1.0 <= v <= 1.0:
                raise ValueError(f"item {self.id!r}: {name} {v} is outside [-1, 1]")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["paths"] = [str(p) for p in self.paths]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Item":
        d = dict(d)
        d["paths"] = tuple(d.get("paths") or ())
        d["extra"] = dict(d.get("extra") or {})
        return cls(**d)


def item_key(item: Item) -> str:
    """``"<corpus>/<id>"``: an item's key across corpora (ids are unique only within a corpus). Splits,
    feature caches and run records all key items by it."""
    return f"{item.corpus}/{item.id}"


def speaker_key(item: Item) -> str | None:
    """``"<corpus>/<speaker>"`` (speaker "01" of two corpora are two people), or None when unknown."""
    return None if item.speaker is None else f"{item.corpus}/{item.speaker}"


class Manifest(list):
    """A ``list[Item]`` with ``warnings``: one line per kind of problem met while loading (unreadable or
    unparseable entries, with their count and an example), so that nothing is skipped silently."""

    def __init__(self, items: Iterable[Item] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.warnings: list[str] = list(warnings)

    def to_jsonl(self, path: str | Path) -> Path:
        """Write a header line ``{"manifest": 1, "warnings": [...]}`` then one item per line."""
        path = Path(path)
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"manifest": 1, "warnings": self.warnings}, ensure_ascii=False) + "\n")
            for it in self:
                f.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")
        return path

    @classmethod
    def from_jsonl(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"manifest {path} does not exist; write one with Manifest.to_jsonl")
        out = cls()
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    if n == 1 and "manifest" in d and "id" not in d:
                        out.warnings = list(d.get("warnings", []))
                        continue
                    out.append(Item.from_dict(d))
                except (ValueError, TypeError) as e:
                    raise InputError(f"manifest {path} line {n} is not a manifest item ({e})") from e
        return out

    def filter(self, predicate: Callable[[Item], bool] | None = None, **fields: Any) -> "Manifest":
        """Items matching every ``field=value`` (a list/tuple/set value means "one of") and ``predicate``.
        E.g. ``m.filter(split="train", label=("happy", "sad"))``. Warnings are kept."""
        for k in fields:
            if k not in Item.__dataclass_fields__:
                raise TypeError(f"Manifest.filter: Item has no field {k!r}")

        def ok(it: Item) -> bool:
            for k, v in fields.items():
                x = getattr(it, k)
                if isinstance(v, (list, tuple, set, frozenset)):
                    if x not in v:
                        return False
                elif x != v:
                    return False
            return predicate is None or predicate(it)

        return Manifest((it for it in self if ok(it)), self.warnings)

    def labels(self) -> list[str | None]:
        """The canonical label of each item, in order (None where unlabelled)."""
        return [it.label for it in self]

    def label_counts(self) -> dict[str | None, int]:
        """Items per canonical label in :data:`EMOTIONS` order (None last, if any)."""
        out: dict[str | None, int] = {}
        for lab in (*EMOTIONS, None):
            n = sum(1 for it in self if it.label == lab)
            if n:
                out[lab] = n
        return out

    def ids(self) -> list[str]:
        return [it.id for it in self]

    def speakers(self) -> list[str]:
        """Distinct speakers, sorted."""
        return sorted({it.speaker for it in self if it.speaker is not None})


class Problems:
    """Collects problem entries by reason (a phrase such as "skipped: name is not ..."); ``lines()`` gives
    one warning per reason with the count and an example."""

    def __init__(self, corpus: str) -> None:
        self.corpus = corpus
        self.by_reason: dict[str, list[str]] = {}

    def add(self, reason: str, where: Any) -> None:
        self.by_reason.setdefault(reason, []).append(str(where))

    def lines(self) -> list[str]:
        return [f"{self.corpus}: {len(w)} entr{'y' if len(w) == 1 else 'ies'} {r} (e.g. {w[0]})"
                for r, w in self.by_reason.items()]


def read_csv(path: Path, corpus: str, required: Iterable[str], delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a csv (``delimiter="\t"``: a tsv) with its header names stripped; InputError naming the
    missing columns."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise InputError(f"{corpus} file {path} has columns {header}; expected the columns "
                                 f"{list(required)} (missing {missing})")
            return [{(k or "").strip(): (v if v is not None else "") for k, v in row.items()} for row in reader]
    except UnicodeDecodeError as e:
        raise InputError(f"{corpus} file {path} is not UTF-8 text ({e})") from e


def split_name(s: str) -> str | None:
    """Normalise a corpus's split name to :data:`SPLITS` (``valid``/``validation`` -> ``val``)."""
    s = s.strip().lower()
    return {"train": "train", "training": "train", "dev": "dev", "val": "val", "valid": "val",
            "validation": "val", "test": "test"}.get(s)


def require_dir(root: Path, corpus: str, layout: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{corpus} root {root} does not exist; expected {layout}")
    return root


@dataclass(frozen=True)
class Corpus:
    """A registered corpus: how to load it and where it lies."""

    name: str  # registry key, e.g. "ravdess"
    load: Callable[[Path], "Manifest"]  # root -> manifest
    subdir: str  # its place below a shared data folder (e.g. "speech/ravdess"); "" if none
    layout: str  # the expected layout, quoted in errors
