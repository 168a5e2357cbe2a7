"""IEMOCAP, Interactive Emotional Dyadic Motion Capture (Busso et al. 2008, Language Resources and
Evaluation; https://sail.usc.edu/iemocap/). Licence: research use only under USC SAIL's release form;
not redistributable.

About 12 hours of English dyadic sessions, 10 actors in 5 sessions (one female, one male each),
improvised and scripted dialogs, 10,039 utterance turns. Each turn has a majority categorical label
(neu, hap, sad, ang, exc excitement, fru frustration, fea, sur, dis, oth other, xxx no majority) and
mean valence/activation/dominance ratings on 1..5. Layout (``IEMOCAP_full_release``):

* ``<root>/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt`` with turn lines
  ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`` (V, A, D), each
  followed by the single evaluators' lines (``C-E2: ...``, ``A-E3: ...``; not read);
* ``<root>/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav``;
* ``<root>/Session1/dialog/transcriptions/Ses01F_impro01.txt`` with lines
  ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``

Label rules (two registered conventions, :func:`load` ``classes=4`` or ``6``):

* **iemocap4** (the usual 4-class set, 5,531 turns): neu -> neutral, hap and exc **merged** -> happy,
  ang -> angry, sad -> sad. Every other label (fru, sur, fea, dis, oth, xxx) -> None.
* **iemocap6** (the usual 6-class set: neu, hap, sad, ang, exc, fru, 7,380 turns): the canonical labels
  are as in iemocap4 (exc -> happy), and **fru -> None** because frustration has no canonical class
  (it is neither anger nor sadness; mapping it would corrupt those classes). The 6-way class itself is
  kept in ``extra["class"]`` ("neu", "hap", "sad", "ang", "exc", "fru") for 6-way training/scoring;
  sur, fea, dis, oth, xxx -> None with ``extra["class"]`` None.

In both, every turn with a wav is an item (unlabelled ones keep their V/A for regression), ``extra
["class"]`` is the convention's class or None (outside the set; in iemocap4 hap and exc both give
"hap"), and ``m.filter(predicate=lambda it: it.extra["class"] is not None)`` gives the standard subset.
sur/fea/dis are *not* mapped to surprised/fearful/disgusted, because the standard conventions exclude
them (they are rare: about 107, 40 and 2 turns). ``original_label`` = the IEMOCAP code.

``id`` = the turn name; ``speaker`` = ``iemocap-Ses01F`` (session + the turn's own speaker letter, the
last ``F``/``M`` before the number: ``Ses01F_impro01_M000`` is the male actor of session 1);
``fold`` = the session number 1..5 (leave-one-session-out); ``split`` None; ``text`` = the transcript
when found; ``valence``/``arousal`` = (x - 3) / 2 of the 1..5 ratings (``extra["dominance"]`` alike);
``extra`` also holds ``start``/``end`` (s), ``dialog``, ``session``, ``gender``, ``improvised``.
Turns whose wav is missing are skipped and reported.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .manifest import Corpus, Item, Manifest, Problems, require_dir

SUBDIR = ""  # not in the shared data
LAYOUT = ("<root>/Session1..Session5/dialog/EmoEvaluation/Ses01F_impro01.txt, "
          "<root>/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav, "
          "<root>/Session1/dialog/transcriptions/Ses01F_impro01.txt")

ORIGINALS: tuple[str, ...] = ("neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis", "oth", "xxx")
# original_label -> canonical, one map per convention (every IEMOCAP code is a key).
LABEL_MAP4: dict[str, str | None] = {
    "neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad",
    "fru": None, "sur": None, "fea": None, "dis": None, "oth": None, "xxx": None,
}
LABEL_MAP6: dict[str, str | None] = dict(LABEL_MAP4)  # same canonical labels; fru -> None (no canonical class)
# original_label -> the convention's own class (None = outside the convention's set).
CLASS4: dict[str, str | None] = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad",
                                 **{k: None for k in ("fru", "sur", "fea", "dis", "oth", "xxx")}}
CLASS6: dict[str, str | None] = {**{k: k for k in ("neu", "hap", "sad", "ang", "exc", "fru")},
                                 **{k: None for k in ("sur", "fea", "dis", "oth", "xxx")}}
LABEL_MAP = LABEL_MAP4  # the default convention
MAPS = {4: (LABEL_MAP4, CLASS4), 6: (LABEL_MAP6, CLASS6)}

_TURN = re.compile(r"Ses0([1-5])([FM])_(.+)_([FM])(\d{3})")
_EVAL = re.compile(r"\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+"
                   r"\[\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*\]\s*")
_TRANS = re.compile(r"(\S+)\s+\[[\d.]+\s*-\s*[\d.]+\]:\s?(.*)")


def _scale(x: float) -> float | None:
    return (x - 3.0) / 2.0 if 1.0 <= x <= 5.0 else None


def _transcripts(session: Path, probs: Problems) -> dict[str, str]:
    out: dict[str, str] = {}
    d = session / "dialog" / "transcriptions"
    if not d.is_dir():
        probs.add("session without dialog/transcriptions (text left None)", session)
        return out
    for f in sorted(d.glob("*.txt")):
        if f.name.startswith("."):
            continue
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _TRANS.fullmatch(line.strip())
            if m:
                out[m.group(1)] = m.group(2).strip()
            elif line.strip() and _TURN.match(line.strip()):
                probs.add("transcription line not parsed", f"{f}: {line.strip()[:60]}")
    return out


def load(root: str | Path, classes: int = 4) -> Manifest:
    """Every evaluated turn under ``root`` with the ``classes``-class convention (4 or 6)."""
    if classes not in MAPS:
        raise InputError(f"IEMOCAP classes must be 4 or 6, not {classes!r}")
    label_map, class_map = MAPS[classes]
    name = f"iemocap{classes}"
    root = require_dir(Path(root), "IEMOCAP", LAYOUT)
    sessions = sorted(d for d in root.glob("Session*") if d.is_dir() and re.fullmatch(r"Session[1-5]", d.name))
    if not sessions:
        raise InputError(f"IEMOCAP root {root} has no Session1..Session5 folders; expected {LAYOUT}")
    probs = Problems(name)
    items: list[Item] = []
    seen: set[str] = set()
    n_eval = 0
    for sd in sessions:
        sess = int(sd.name[-1])
        ev = sd / "dialog" / "EmoEvaluation"
        if not ev.is_dir():
            probs.add("session without dialog/EmoEvaluation (not loaded)", sd)
            continue
        texts = _transcripts(sd, probs)
        for f in sorted(ev.glob("*.txt")):
            if f.name.startswith("."):
                continue
            n_eval += 1
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.startswith("["):
                    continue  # header, evaluator lines, blank lines
                m = _EVAL.fullmatch(line)
                if not m:
                    probs.add("skipped: evaluation line is not [start - end] TURN label [V, A, D]", f"{f}: {line[:60]}")
                    continue
                start, end, turn, orig, v, a, dom = m.groups()
                t = _TURN.fullmatch(turn)
                if not t or int(t.group(1)) != sess:
                    probs.add("skipped: turn name is not SesNNX_<dialog>_XNNN of this session", f"{f}: {turn}")
                    continue
                if orig not in label_map:
                    probs.add(f"skipped: unknown label (known: {', '.join(ORIGINALS)})", f"{f}: {turn} {orig}")
                    continue
                if turn in seen:
                    probs.add("skipped: turn evaluated twice (first kept)", turn)
                    continue
                dialog = turn.rsplit("_", 1)[0]
                wav = sd / "sentences" / "wav" / dialog / f"{turn}.wav"
                if not wav.is_file():
                    probs.add("skipped: wav missing at Session<N>/sentences/wav/<dialog>/<turn>.wav", wav)
                    continue
                val, aro, dm = _scale(float(v)), _scale(float(a)), _scale(float(dom))
                if None in (val, aro, dm):
                    probs.add("V/A/D rating outside 1..5 (left None)", turn)
                if turn not in texts:
                    probs.add("no transcript line (text left None)", turn)
                seen.add(turn)
                gender = t.group(4)
                items.append(Item(
                    id=turn, corpus=name, paths=(wav,), text=texts.get(turn),
                    speaker=f"iemocap-Ses0{sess}{gender}", fold=sess, label=label_map[orig], original_label=orig,
                    valence=val, arousal=aro,
                    extra={"class": class_map[orig], "dominance": dm, "start": float(start), "end": float(end),
                           "dialog": dialog, "session": sess, "gender": "female" if gender == "F" else "male",
                           "improvised": "_impro" in dialog},
                ))
    if not items:
        what = "EmoEvaluation files but no turns with a wav" if n_eval else "no Session<N>/dialog/EmoEvaluation/*.txt"
        raise InputError(f"IEMOCAP root {root} has {what}; expected {LAYOUT}")
    return Manifest(items, probs.lines())


def load4(root: str | Path) -> Manifest:
    """The 4-class convention (neu, hap+exc, ang, sad)."""
    return load(root, classes=4)


def load6(root: str | Path) -> Manifest:
    """The 6-class convention (neu, hap, sad, ang, exc, fru; fru has no canonical label)."""
    return load(root, classes=6)


__all__ = ["CLASS4", "CLASS6", "LABEL_MAP", "LABEL_MAP4", "LABEL_MAP6", "LAYOUT", "ORIGINALS", "load", "load4", "load6"]


CORPORA = (Corpus("iemocap4", load4, SUBDIR, LAYOUT), Corpus("iemocap6", load6, SUBDIR, LAYOUT))
