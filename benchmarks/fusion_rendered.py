"""The constructed validation pairs rendered into real videos and run through ``emofuse analyze`` end to end
(prints figures; not a test).

``benchmarks/fusion_constructed.py`` scores the face of a constructed pair through ``analyze_image`` and
assumes that a still face shown for a clip's length reads the same in every frame of a video. This checks it:
for ``--per-class`` validation clips per class and corpus (held-out speakers of the speech corpora, the same
seeded choice as ``emofuse.training.constructed``), the clip's FER2013 PublicTest face of the same label is
rendered, upscaled to 240 x 240 on a grey 426 x 240 canvas, into an H.264 video at 10 fps with the clip's audio
as AAC, and the video goes through ``Analyzer.analyze``. Printed: how often a face was found in the video,
the face label's agreement with ``analyze_image`` on the same face, and per-modality and fused UA over the
rendered videos. Constructed pairs (voice, face and words of different people). The voice here is the
**shipped** head, trained on these corpora's training speakers (other speakers, but the same corpora): the
voice and fused figures are in-corpus, unlike those of ``fusion_constructed.py``; the face figures are not.

    python benchmarks/fusion_rendered.py [--data ../shared/data] [--per-class 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def render(face: Path, audio: np.ndarray, out: Path, fps: int = 10) -> Path:
    import av
    from PIL import Image

    img = np.asarray(Image.open(face).convert("RGB").resize((240, 240), Image.BILINEAR))
    frame = np.full((240, 426, 3), 128, np.uint8)
    frame[:, 93:333] = img
    seconds = len(audio) / 16000
    with av.open(str(out), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = 426, 240, "yuv420p"
        v.options = {"crf": "23", "preset": "veryfast"}
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        for _ in range(max(1, int(np.ceil(seconds * fps)))):
            for p in v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        for i in range(0, len(audio), 1024):
            f = av.AudioFrame.from_ndarray(audio[None, i:i + 1024].astype(np.float32), format="flt", layout="mono")
            f.sample_rate, f.pts, f.time_base = 16000, i, Fraction(1, 16000)
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    return out


def ua(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    ok = pred >= 0
    return float(balanced_accuracy_score(y[ok], pred[ok])) if ok.any() else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not (Path(a.data) / "speech" / "ravdess").is_dir():
        ap.error(f"needs the speech corpora and FER2013 under {a.data} (--data)")
    from emofuse.features.face import FaceAnalyzer, FaceOptions
    from emofuse.media import load_audio
    from emofuse.pipeline import Analyzer
    from emofuse.taxonomy import EMOTIONS
    from emofuse.training.constructed import SPEECH, ConstructedOptions, _faces, select, speaker_parts
    from emofuse.training.data import labelled

    opts = ConstructedOptions(data=a.data, seed=a.seed, per_class=a.per_class)
    items = [it for it in labelled(SPEECH, a.data).items if it.speaker is not None]
    parts = speaker_parts(items, opts.val_share, opts.seed)
    chosen = [it for it in select(items, parts, opts.per_class, opts.seed) if parts[it.speaker] == "val"]
    faces = _faces(opts, [it.label for it in chosen], ["val"] * len(chosen))
    fa = FaceAnalyzer(FaceOptions())
    from PIL import Image

    img_label = []
    for f in faces:
        o = fa.analyze_image(np.asarray(Image.open(f).convert("RGB")))
        img_label.append(-1 if o is None else int(np.argmax(o.probs)))
    analyzer = Analyzer()
    y = np.array([EMOTIONS.index(it.label) for it in chosen])
    pred = {m: np.full(len(chosen), -1) for m in ("voice", "face", "text", "fused")}
    found = np.zeros(len(chosen), bool)
    with tempfile.TemporaryDirectory() as t:
        for i, (it, f) in enumerate(zip(chosen, faces)):
            video = render(f, load_audio(it.paths[0]), Path(t) / f"{i:04d}.mp4")
            r = analyzer.analyze(video)
            segs = [s for s in r.segments if s.fused is not None]
            if not segs:
                continue
            s = max(segs, key=lambda s: s.end - s.start)  # the clip's main utterance
            pred["fused"][i] = EMOTIONS.index(s.fused.label)
            for m, o in s.modalities.items():
                pred[m][i] = int(np.argmax([o.probs[e] for e in EMOTIONS]))
            found[i] = "face" in s.modalities
    img = np.array(img_label)
    both = found & (img >= 0)
    print(f"\n== {len(chosen)} rendered videos (constructed validation pairs, {a.per_class} per class and corpus, "
          f"seed {a.seed}; {', '.join(SPEECH)})")
    print(f"face found in the video: {found.mean():.3f}; in the still image (analyze_image): {(img >= 0).mean():.3f}")
    print(f"face label, video vs still image: agreement {(pred['face'][both] == img[both]).mean():.3f} "
          f"over {both.sum()} pairs")
    print(f"UA on the rendered videos (answered / all): " + ", ".join(
        f"{m} {ua(y, p):.3f} ({(p >= 0).mean():.2f})" for m, p in pred.items()))
    print(f"face UA of the still images on the same pairs: {ua(y, img):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
