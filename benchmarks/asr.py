"""The ASR decoding budget, measured: speed and word error rate per decoding setting (prints figures).

    python benchmarks/asr.py [--data ../shared/data] [--variants before,shipped] [--n 40] [--dump FILE]

Sets (real speech from the corpora of ../shared/data, seeded samples; nothing is copied):

* ``english``: RAVDESS clips (two known sentences);
* ``polish``: nEMO clips with their transcripts (``data.tsv``);
* ``turkish``: TurEV-DB single words (the word is in the file name, ASCII-folded);
* ``long``: the 60 s LibriVox clip of ``.cache/media`` (reference: the first variant's transcript, so its WER
  is the change against it; the same for ``hard``);
* ``hard``: 60 s of TurEV-DB words with 0.25 s gaps over a babble of nEMO speech at -6 dB (noisy speech in
  a language Whisper-base knows poorly, as one recording).

Per variant and set: RTF (ASR wall time / audio seconds, model loaded), WER against the references (jiwer,
lower-cased, punctuation removed, Turkish ASCII-folded), the share of clips with an empty transcript and the
decodes. Short clips are packed into shared windows (``transcribe_many``, as ``analyze_many`` does; ``--alone``:
one by one); ``before`` is faster-whisper's own ``transcribe``, one clip at a time. Timings on these shared
machines are noisy (the same decode measured 0.127 and 0.163 in one run): compare variants within one run,
and repeat a run before trusting a difference under ~20 %.

Variants: ``before``; ``ladder`` (faster-whisper's fallback ladder, 0.0-1.0 in six steps with 5 samples, in
emofuse's windows); ``short-ladder`` (0.0, 0.4 with 2 samples); ``greedy`` (no fallback, no cap); ``shipped``
(``ASROptions()``: greedy, at most 15 tokens per second of speech); ``ngram`` (shipped, and no 4-gram repeated
in a window). A decode that runs in steps to stop a loop early was tried and dropped: CTranslate2 4.8 decodes
a prefix token by token (a 100-token prefix costs as much as generating it), so continuing a decode repeats
it, and nEMO Polish cost 40 % more for no gain on the hard clip.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]
from speech_sets import hard_clip, nemo_text, norm, turev_word  # noqa: E402

SHORT = ("english", "polish", "turkish")  # sets of short clips: packed unless --alone

VARIANTS = {
    "before": None,  # faster-whisper's own transcribe(), as emofuse called it before the budget (VAD, greedy)
    "ladder": {"temperatures": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), "best_of": 5, "tokens_per_second": None},  # faster-whisper's fallback ladder in emofuse's windows
    "short-ladder": {"temperatures": (0.0, 0.4), "best_of": 2, "tokens_per_second": None},
    "greedy": {"temperatures": (0.0,), "tokens_per_second": None},
    "shipped": {},  # ASROptions() as shipped: greedy, a cap of 15 tokens per second of speech
    "ngram": {"no_repeat_ngram_size": 4},  # shipped + no 4-gram twice in a window (loops cannot start)
}


def load_sets(data: Path, n: int, seed: int = 0) -> dict[str, list[tuple[str, np.ndarray, str | None]]]:
    from emofuse.corpora import prepare
    from emofuse.media import load_audio

    rng = random.Random(seed)
    sets: dict[str, list[tuple[str, np.ndarray, str | None]]] = {}
    rav = rng.sample([it for it in prepare("ravdess", data)], n)
    sets["english"] = [(it.id, load_audio(it.paths[0]), it.text) for it in rav]
    nemo_dir = data / "speech" / "nemo"
    text = nemo_text(data)
    nemo = rng.sample(sorted(nemo_dir.glob("*.opus")), n)
    sets["polish"] = [(p.stem, load_audio(p), text.get(p.stem)) for p in nemo]
    tur = sorted((data / "speech" / "turevdb").glob("*/*.opus"))
    pick = rng.sample(tur, n)
    sets["turkish"] = [(p.stem, load_audio(p), turev_word(p)) for p in pick]
    libri = ROOT / ".cache" / "media" / "two_cities.wav"
    sets["long"] = [("two_cities", load_audio(libri), None)]
    sets["hard"] = [("hard_60s", hard_clip(data), None)]
    return sets


def _transcriber(name: str, asr_model: str):
    """``(transcribe_many, model)`` for a variant: the new windows, or faster-whisper's own ``transcribe``."""
    from emofuse.asr import ASROptions, WhisperASR

    asr = WhisperASR(ASROptions(model=asr_model, **(VARIANTS[name] or {})))
    if VARIANTS[name] is not None:
        return asr.transcribe_many, asr

    def before(audios, packed=False):  # one input at a time, as emofuse called faster-whisper before
        out = []
        for a in audios:
            segs, _ = asr.model.transcribe(a, beam_size=1, vad_filter=True, condition_on_previous_text=False,
                                           vad_parameters={"min_silence_duration_ms": 500})
            out.append([s.text.strip() for s in segs])
        return out

    return before, asr


def run_variant(name: str, sets: dict, asr_model: str, refs: dict, packed: bool) -> dict:
    import jiwer

    many, asr = _transcriber(name, asr_model)
    many([sets["english"][0][1]])  # warm up
    calls = {"n": 0}

    class Counting:  # decodes: greedy + each fallback temperature (CTranslate2's methods are read-only)
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, attr):
            return getattr(self._inner, attr)

        def generate(self, *a, **k):
            calls["n"] += 1
            return self._inner.generate(*a, **k)

    asr.model.model = Counting(asr.model.model)
    out = {}
    for set_name, clips in sets.items():
        audios = [a for _, a, _ in clips]
        t = time.perf_counter()
        if packed and set_name in SHORT:
            res = many(audios)
        else:
            res = [r for a in audios for r in many([a])]
        wall = time.perf_counter() - t
        hyps = [" ".join(u if isinstance(u, str) else u.text for u in r).strip() for r in res]
        unreliable = [sum(1 for u in r if not isinstance(u, str) and u.text and not u.reliable) for r in res]
        vad = [sum(1 for u in r if not isinstance(u, str) and u.source == "vad") for r in res]
        secs = sum(len(a) for a in audios) / 16000
        fold = set_name == "turkish"
        refs_here = [refs.get((set_name, cid), ref) for cid, _, ref in clips]
        pairs = [(norm(r, fold), norm(h, fold)) for r, h in zip(refs_here, hyps) if r is not None and norm(r, fold)]
        wer = jiwer.wer([r for r, _ in pairs], [h or "∅" for _, h in pairs]) if pairs else float("nan")
        tok = sum(len(asr.model.hf_tokenizer.encode(h).ids) for h in hyps)
        out[set_name] = {"rtf": wall / secs, "wer": wer, "empty": sum(not h for h in hyps) / len(hyps),
                         "decodes": calls["n"], "hyps": hyps, "tok_s": tok / secs,
                         "unreliable": sum(unreliable), "vad": sum(vad), "seconds": secs}
        calls["n"] = 0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--asr-model", default="whisper-base")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--n", type=int, default=40, help="clips per corpus")
    ap.add_argument("--alone", action="store_true", help="transcribe short clips one by one, not packed")
    ap.add_argument("--dump", type=Path, help="write every transcript (per variant, set and clip) to this JSON file")
    a = ap.parse_args()
    names = a.variants.split(",")
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        ap.error(f"unknown variants {bad}; choose from {', '.join(VARIANTS)}")
    sets = load_sets(a.data, a.n)
    print("sets: " + ", ".join(f"{k} {len(v)} clips / {sum(len(x) for _, x, _ in v) / 16000:.0f} s"
                               for k, v in sets.items()) + f"; short clips {'one by one' if a.alone else 'packed'}",
          flush=True)
    refs: dict = {}
    rows = []
    for i, name in enumerate(names):
        r = run_variant(name, sets, a.asr_model, refs, packed=not a.alone)
        if i == 0:  # LibriVox and the hard clip have no text: the first variant's transcript is the reference
            for set_name in ("long", "hard"):
                for (cid, _, ref), h in zip(sets[set_name], r[set_name]["hyps"]):
                    if ref is None:
                        refs[(set_name, cid)] = h
        rows.append((name, r))
        print(f"{name:13s} " + "  ".join(f"{s}: RTF {v['rtf']:.3f} WER {v['wer']:.3f} empty {v['empty']:.2f} "
                                         f"decodes {v['decodes']} tok/s {v['tok_s']:.1f} unreliable {v['unreliable']} "
                                         f"vad {v['vad']}" for s, v in r.items()), flush=True)
    if a.dump:
        import json

        a.dump.write_text(json.dumps({name: {s: {"ids": [c for c, _, _ in sets[s]], "refs": [x for _, _, x in sets[s]],
                                                 "hyps": v["hyps"]} for s, v in r.items()} for name, r in rows},
                                     ensure_ascii=False, indent=1))
    print()
    print(f"WER of long and hard: against the first variant's ({names[0]}) transcript")
    print("| variant | " + " | ".join(f"{s} RTF | {s} WER" for s in sets) + " |")
    print("|---|" + "---|---|" * len(sets))
    for name, r in rows:
        print(f"| {name} | " + " | ".join(f"{r[s]['rtf']:.3f} | {r[s]['wer']:.3f}" for s in sets) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
