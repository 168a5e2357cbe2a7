"""Shorter Whisper windows for one short utterance (prints figures; not a test).

faster-whisper pads every window to 30 s, so a 3 s utterance (the live mode's unit, or one short file) pays
for 27 s of padding in the encoder. This measures what padding to fewer seconds does, per model: word error rate
(RAVDESS English, 40 clips; nEMO Polish, 40 clips, multilingual models only), encoder and decoder time per
utterance, and what the voice expert reads from the shorter window's encoder states (its shipped head's top
class agreement and mean |dp| against the 30 s window). Greedy decoding without timestamps, English / Polish
prompt, one utterance per window.

``--asr`` measures the shipped path instead: ``WhisperASR(ASROptions(window=W)).transcribe`` one clip at a time
(VAD, timestamps and word timestamps, language detected for the multilingual model), word error rate and
milliseconds per utterance, and the share of clips whose detected language is the set's. Decoding with timestamps is what keeps the short windows from looping.

    python benchmarks/asr_window.py [--data ../shared/data] [--pads 30,20,15,10] [--n 40] [--asr]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]

RAVDESS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w' ]", " ", text.lower())).strip()


def sets(data: Path, n: int, multilingual: bool) -> dict[str, list[tuple[Path, str]]]:
    import speech_sets

    rng = random.Random(0)
    rav = sorted((data / "speech" / "ravdess").glob("*/*.flac"))
    rng.shuffle(rav)
    out = {"en (RAVDESS)": [(p, RAVDESS[p.stem.split("-")[4]]) for p in rav[:n]]}
    if multilingual:
        text = speech_sets.nemo_text(data)
        nemo = sorted((data / "speech" / "nemo").glob("*.opus"))
        rng.shuffle(nemo)
        out["pl (nEMO)"] = [(p, text[p.stem]) for p in nemo[:n] if p.stem in text]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--pads", default="30,20,15,10")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--models", default="whisper-base,whisper-tiny.en")
    ap.add_argument("--asr", action="store_true", help="the shipped ASR path (WhisperASR) instead of bare decoding")
    args = ap.parse_args()
    if not (args.data / "speech" / "ravdess").is_dir():
        ap.error(f"needs the speech corpora under {args.data / 'speech'} (--data)")
    if args.asr:
        return shipped_path(args)
    import ctranslate2
    import jiwer
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    from emofuse.asr import load_whisper
    from emofuse.experts import shipped_head
    from emofuse.features.voice import pool_frames
    from emofuse.media import load_audio

    pads = [float(x) for x in args.pads.split(",")]
    print(f"{'model':<16}{'set':<14}{'pad s':>6}{'WER':>7}{'enc ms':>8}{'dec ms':>8}{'voice top-1 agree':>19}"
          f"{'mean |dp|':>11}")
    for name in args.models.split(","):
        m = load_whisper(name, threads=2)
        head = shipped_head(f"voice-{name}")
        multi = m.model.is_multilingual
        for label, items in sets(args.data, args.n, multi).items():
            lang = label[:2]
            tok = Tokenizer(m.hf_tokenizer, multi, task="transcribe", language=lang)
            prompt = list(tok.sot_sequence) + [tok.no_timestamps]
            auds = [load_audio(p) for p, _ in items]
            refs = [norm(t) for _, t in items]
            base: np.ndarray | None = None
            for pad in pads:
                hyps, vp, t_enc, t_dec = [], [], 0.0, 0.0
                for a in auds:
                    f = m.feature_extractor(a)
                    x = pad_or_trim(f[:, :min(3000, f.shape[-1] - 1)], int(round(pad * 100)))
                    t = time.perf_counter()
                    enc = m.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(x[None])), to_cpu=False)
                    t_enc += time.perf_counter() - t
                    t = time.perf_counter()
                    r = m.model.generate(enc, [prompt], beam_size=1, max_length=120, suppress_blank=True)
                    t_dec += time.perf_counter() - t
                    hyps.append(norm(tok.decode([i for i in r[0].sequences_ids[0] if i < tok.eot])))
                    vp.append(head.predict_proba(pool_frames(np.asarray(enc)[0], 0.0, len(a) / 16000))[0])
                P = np.array(vp)
                if base is None:
                    base = P
                agree = float((P.argmax(1) == base.argmax(1)).mean())
                print(f"{name:<16}{label:<14}{pad:6.0f}{jiwer.wer(refs, hyps):7.3f}{1000 * t_enc / len(auds):8.0f}"
                      f"{1000 * t_dec / len(auds):8.0f}{agree:19.3f}{float(np.abs(P - base).mean()):11.4f}", flush=True)
    return 0


def shipped_path(args: argparse.Namespace) -> int:
    import jiwer

    from emofuse.asr import ASROptions, WhisperASR
    from emofuse.media import load_audio

    print(f"{'model':<16}{'set':<14}{'window s':>9}{'WER':>7}{'ms/utt':>8}{'language':>9}")
    for name in args.models.split(","):
        multi = not name.endswith(".en")
        for label, items in sets(args.data, args.n, multi).items():
            auds = [load_audio(p) for p, _ in items]
            refs = [norm(t) for _, t in items]
            for w in [float(x) for x in args.pads.split(",")]:
                asr = WhisperASR(ASROptions(model=name, window=w))
                asr.transcribe(auds[0])  # warm
                t = time.perf_counter()
                utts = [asr.transcribe(a) for a in auds]
                ms = 1000 * (time.perf_counter() - t) / len(auds)
                hyps = [norm(" ".join(u.text for u in us)) for us in utts]
                want = label.split()[0]  # the set's language: is that what Whisper detected?
                right = np.mean([bool(us) and all(u.language == want for u in us) for us in utts])
                lang = f"{right:9.2f}" if multi else f"{'-':>9}"  # an English-only model detects nothing
                print(f"{name:<16}{label:<14}{w:9.0f}{jiwer.wer(refs, hyps):7.3f}{ms:8.0f}{lang}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
