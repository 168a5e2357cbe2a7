"""Speech the benchmarks share, built from the corpora of ../shared/data (seeded; nothing is copied).

* :func:`hard_clip`: 60 s that Whisper-base handles badly: 120 TurEV-DB words (Turkish, one speaker after
  another) with 0.25 s gaps, over a babble of 60 nEMO (Polish) sentences at -6 dB. Noisy speech in a
  language Whisper-base knows poorly, as one recording.
* :func:`short_folder`: 100 short clips (2-3 s): 50 nEMO sentences and 50 TurEV-DB words of at least
  1.5 s, interleaved as a mixed folder would be listed.
* :func:`nemo_text`: nEMO's transcripts (``data.tsv``) by file stem.
"""

from __future__ import annotations

import csv
import random
import re
import unicodedata
from pathlib import Path

import numpy as np

SR = 16000


def nemo_text(data: Path) -> dict[str, str]:
    text = {}
    with open(data / "speech" / "nemo" / "data.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            text[Path(row["file_id"]).stem] = row["raw_text"]
    return text


def turev_word(path: Path) -> str:
    """TurEV-DB names a clip after its word: ``<speaker>_<emotion>_<word>``."""
    return path.stem.split("_", 2)[-1]


def norm(text: str, fold: bool = False) -> str:
    """Lower-cased words without punctuation (``fold``: accents removed, for ASCII-named Turkish words)."""
    t = text.lower().replace("ı", "i")
    if fold:
        t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]", " ", t).split())


def hard_clip(data: Path, seed: int = 0) -> np.ndarray:
    from emofuse.media import load_audio

    rng = random.Random(seed)
    tur = sorted((data / "speech" / "turevdb").glob("*/*.opus"))
    nemo = sorted((data / "speech" / "nemo").glob("*.opus"))
    words = [load_audio(p) for p in rng.sample(tur, 120)]
    gap = np.zeros(SR // 4, np.float32)
    fg = np.concatenate([x for w in words for x in (w, gap)])[: 60 * SR]
    babble = np.zeros_like(fg)
    for p in rng.sample(nemo, 60):
        a = load_audio(p)
        at = rng.randrange(0, len(fg) - 1)
        seg = a[: len(fg) - at]
        babble[at: at + len(seg)] += seg
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)) + 1e-9)  # noqa: E731
    hard = fg + babble * (rms(fg) / rms(babble)) * 10 ** (-6 / 20)
    return (hard / max(1.0, float(np.abs(hard).max()))).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    """16-bit mono PCM WAV at 16 kHz."""
    import wave

    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SR)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def short_folder(data: Path, out: Path, n: int = 100, seed: int = 0) -> list[Path]:
    """``n`` short clips (2-3 s), alternating: nEMO sentences of 2-3 s (their own files) and Turkish clips
    written into ``out`` (a temporary folder: TurEV-DB words last about a second, so each clip is two or three
    words of one speaker and emotion, 0.3 s apart)."""
    import av

    from emofuse.media import load_audio

    rng = random.Random(seed)

    def seconds(p: Path) -> float:
        with av.open(str(p)) as c:
            return float(c.duration or 0) / 1e6

    nemo = sorted((data / "speech" / "nemo").glob("*.opus"))
    rng.shuffle(nemo)
    pl = []
    for p in nemo:
        if len(pl) == n // 2:
            break
        if 2.0 <= seconds(p) <= 3.0:
            pl.append(p)
    groups: dict[str, list[Path]] = {}
    for p in sorted((data / "speech" / "turevdb").glob("*/*.opus")):
        groups.setdefault(f"{p.parent.name}/{p.stem.split('_')[0]}", []).append(p)  # emotion / speaker
    keys = sorted(groups)
    out.mkdir(parents=True, exist_ok=True)
    tr: list[Path] = []
    gap = np.zeros(int(0.3 * SR), np.float32)
    while len(tr) < n - len(pl):
        words = groups[rng.choice(keys)]
        pick = rng.sample(words, min(len(words), 3))
        clip: list[np.ndarray] = []
        for w in pick:
            clip += [load_audio(w), gap]
            if sum(len(x) for x in clip) >= 2.0 * SR:
                break
        a = np.concatenate(clip[:-1])
        if not 2.0 * SR <= len(a) <= 3.0 * SR:
            continue
        path = out / f"tr_{len(tr):03d}_{'+'.join(turev_word(w) for w in pick[: (len(clip)) // 2])}.wav"
        tr.append(write_wav(path, a))
    return [x for pair in zip(pl, tr) for x in pair] + pl[len(tr):] + tr[len(pl):]
