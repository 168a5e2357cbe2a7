"""Face expert: input checks, label mapping and summaries (fast); real photos, videos and FER2013 (slow)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emofuse.errors import InputError
from emofuse.features import face as ff
from emofuse.taxonomy import EMOTIONS, FER2013

# ------------------------------------------------------------------------------------------------ fast


def test_import_is_light():
    code = ("import sys, emofuse.features.face; "
            "print(any(m in sys.modules for m in ('mediapipe', 'cv2', 'ai_edge_litert', 'tensorflow', 'fer')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fer_output_order_maps_to_canonical():
    model_out = np.arange(7.0)  # model index i holds i
    canon = model_out[ff._TO_CANONICAL]
    for j, label in enumerate(EMOTIONS):
        fer_name = next(k for k, v in FER2013.items() if v == label)
        assert canon[j] == ff.FER_ORDER.index(fer_name)
    assert [EMOTIONS[j] for j in np.argsort(ff._TO_CANONICAL)] == [FER2013[x] for x in ff.FER_ORDER]


def test_as_rgb_converts_grey_and_rgba():
    grey = np.random.default_rng(0).integers(0, 255, (40, 30), dtype=np.uint8)
    for x in (grey, grey[..., None]):
        rgb = ff.as_rgb(x)
        assert rgb.shape == (40, 30, 3) and rgb.dtype == np.uint8 and (rgb[..., 1] == grey).all()
    rgba = np.dstack([ff.as_rgb(grey), np.full((40, 30), 7, np.uint8)])
    assert (ff.as_rgb(rgba) == ff.as_rgb(grey)).all()
    view = ff.as_rgb(grey)[:, ::-1]  # non-contiguous views are copied (mediapipe needs contiguous)
    assert ff.as_rgb(view).flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros((64, 64, 3), np.float32), "uint8"),
    (np.zeros((64, 64, 2), np.uint8), "shape"),
    (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
    (np.zeros((8, 8), np.uint8), "16x16"),
    ([[0, 1], [2, 3]], "numpy array"),
])
def test_as_rgb_rejects_garbage(bad, fragment):
    with pytest.raises(InputError, match=fragment):
        ff.as_rgb(bad)


def test_face_crop_small_and_large_paths_agree():
    import cv2

    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), (0, 0), 2)
    box = (4.3, 7.6, 44.9, 48.2)
    small = ff.face_crop(base, box).astype(np.float32)  # sub-pixel bilinear path
    big = cv2.resize(base, None, fx=6, fy=6, interpolation=cv2.INTER_LINEAR)
    large = ff.face_crop(big, tuple(v * 6 for v in box)).astype(np.float32)  # whole-pixel INTER_AREA path
    (dx, dy), _ = cv2.phaseCorrelate(small, large)
    assert small.shape == large.shape == (64, 64) and abs(dx) < 0.3 and abs(dy) < 0.3
    for b in ((-10, -10, 20, 20), (40, 40, 47.9, 47.9), (-5, 10, 10, 60)):  # partly outside: edge repeated
        assert ff.face_crop(base, b).shape == ff.face_crop(big, tuple(v * 6 for v in b)).shape == (64, 64)


def test_options_are_checked():
    with pytest.raises(InputError):
        ff.FaceOptions(min_detection_confidence=1.5)
    with pytest.raises(InputError):
        ff.FaceOptions(max_faces=0)


def _obs(label: str, mode: str = "detected") -> ff.FaceObservation:
    p = np.full(7, 0.01)
    p[EMOTIONS.index(label)] = 0.94
    return ff.FaceObservation((0, 0, 10, 10), 0.9, p, mode)


def test_summarize_averages_frames_with_a_face():
    out = ff.FaceAnalyzer.summarize([_obs("happy"), None, _obs("sad"), _obs("happy")])
    assert out is not None
    assert out.extra == {"frames": 3, "frames_total": 4, "mode": "detected", "faces_max": 1}
    assert max(out.probs, key=out.probs.get) == "happy"
    assert out.probs["happy"] == pytest.approx((0.94 * 2 + 0.01) / 3)
    assert sum(out.probs.values()) == pytest.approx(1.0)
    assert ff.FaceAnalyzer.summarize([None, None]) is None
    assert ff.FaceAnalyzer.summarize([]) is None
    assert ff.FaceAnalyzer.summarize([_obs("sad", "whole-image"), _obs("sad")]).extra["mode"] == "mixed"


def _frame(*faces: tuple[tuple[int, int, int, int], str]) -> ff.FaceObservation:
    seen = tuple(ff.SeenFace(box, 0.9, _obs(lab).probs) for box, lab in faces)
    return ff.FaceObservation(seen[0].box, 0.9, seen[0].probs, "detected", len(seen), seen)


def test_faces_are_tracked_across_frames_and_segments_read_the_most_present_one():
    a, b = (0, 0, 40, 40), (100, 0, 130, 30)  # person A (larger) left, person B right
    moved = (4, 2, 44, 42)  # A a little later: IoU with a = 0.72
    frames = [_frame((a, "happy"), (b, "sad")), _frame((moved, "happy"), (b, "sad")), None,
              _frame((b, "sad")), _frame((b, "sad"))]
    tracked = ff.track_faces([0.0, 0.2, 0.4, 0.6, 0.8], frames)
    ids = [[f.track for f in o.seen] if o is not None else None for o in tracked]
    assert ids == [[0, 1], [0, 1], None, [1], [1]]
    # B is in 4 of the frames, A in 2: B's face is read, though A is the larger where both are seen
    out = ff.FaceAnalyzer.summarize(tracked, tracked=True)
    assert out is not None and out.extra["track"] == 1 and out.extra["tracks"] == 2 and out.extra["frames"] == 4
    assert max(out.probs, key=out.probs.get) == "sad"
    first = ff.FaceAnalyzer.summarize(tracked[:2], tracked=True)  # a tie in frames: the larger face
    assert first is not None and first.extra["track"] == 0 and max(first.probs, key=first.probs.get) == "happy"
    # a gap longer than max_gap starts a new track
    late = ff.track_faces([0.0, 5.0], [_frame((a, "happy")), _frame((a, "happy"))])
    assert [o.seen[0].track for o in late if o is not None] == [0, 1]


def test_an_image_lists_every_classified_face():
    o = _frame(((0, 0, 40, 40), "happy"), ((50, 0, 80, 30), "angry"))
    out = ff.FaceAnalyzer.summarize([o])
    assert out is not None and max(out.probs, key=out.probs.get) == "happy"
    assert [max(f["probs"], key=f["probs"].get) for f in out.extra["faces"]] == ["happy", "angry"]
    assert out.extra["faces"][1]["box"] == [50, 0, 80, 30]


# ------------------------------------------------------------------------------------------------ slow


@pytest.fixture(scope="module")
def analyzer():
    a = ff.FaceAnalyzer(ff.FaceOptions())
    yield a
    a.close()


def _read(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def _frames(path: Path, n: int, step: int = 1) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for i, f in zip(range(n * step), c.decode(video=0)) if i % step == 0]


@pytest.mark.slow
def test_single_face_photo(analyzer, media):
    img = _read(media / "single_face.jpg")
    h, w = img.shape[:2]
    o = analyzer.analyze_image(img)
    assert o is not None and o.mode == "detected" and o.score >= 0.5
    x0, y0, x1, y1 = o.box
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert 0.1 * w <= x1 - x0 <= 0.8 * w and 0.1 * h <= y1 - y0 <= 0.8 * h  # a face, not a speck or the frame
    assert o.probs.shape == (7,) and o.probs.sum() == pytest.approx(1.0, abs=1e-4)
    # grey and RGBA versions of the photo find the same face
    import cv2

    g = analyzer.analyze_image(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    rgba = analyzer.analyze_image(cv2.cvtColor(img, cv2.COLOR_RGB2RGBA))
    assert g is not None and rgba is not None
    assert np.abs(np.subtract(g.box, o.box)).max() <= 0.05 * w and rgba.box == o.box


@pytest.mark.slow
def test_no_face_photo(analyzer, media):
    img = _read(media / "no_face.jpg")
    assert not analyzer.looks_like_face_crop(ff.as_rgb(img))
    assert analyzer.analyze_image(img) is None


@pytest.mark.slow
def test_multi_face_photo_uses_the_largest(analyzer, media):
    img = _read(media / "multi_face.jpg")
    dets = analyzer.detect(img)
    assert len(dets) >= 3
    areas = [(x1 - x0) * (y1 - y0) for (x0, y0, x1, y1), _ in dets]
    assert areas == sorted(areas, reverse=True)
    o = analyzer.analyze_image(img)
    assert o is not None and o.faces == len(dets)
    assert np.abs(np.subtract(o.box, dets[0][0])).max() <= 1  # the largest box (rounded to pixels)
    big = [d for d in dets if max(d[0][2] - d[0][0], d[0][3] - d[0][1]) >= analyzer.options.min_face_side]
    assert len(o.seen) == min(len(big), analyzer.options.max_faces) >= 3 and o.seen[0].box == o.box
    out = analyzer.summarize([o])
    assert out is not None and len(out.extra["faces"]) == len(o.seen)


@pytest.mark.slow
def test_video_frames(analyzer, media):
    frames = _frames(media / "single_face.mp4", 8, step=8)
    obs = analyzer.analyze_frames(frames)
    assert len(obs) == len(frames) and all(o is not None and o.mode == "detected" for o in obs)
    out = analyzer.summarize(obs)
    assert out is not None and out.extra["frames"] == len(frames) == out.extra["frames_total"]
    assert analyzer.analyze_frames([]) == []


@pytest.mark.slow
def test_faceless_video_frames(analyzer, media):
    frames = _frames(media / "no_face.mp4", 16, step=6)
    obs = analyzer.analyze_frames(frames)
    assert sum(o is not None for o in obs) <= 1  # blurry title text fooled BlazeFace at 0.5; 0.7 holds


@pytest.mark.slow
def test_batched_equals_single(analyzer, media):
    frames = _frames(media / "WolfgangLanger_Pexels.mp4", 5, step=20)
    together = analyzer.analyze_frames(frames)
    alone = [analyzer.analyze_frames([f])[0] for f in frames]
    for a, b in zip(together, alone):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.box == b.box and np.allclose(a.probs, b.probs, atol=1e-4)


def _fer_sample(data_root: Path, per_class: int, seed: int = 0) -> list[tuple[Path, str]]:
    root = data_root / "faces" / "fer2013" / "validation"
    if not root.is_dir():
        pytest.skip(f"FER2013 validation images not found under {root}")
    rng = random.Random(seed)
    out = []
    for name, label in FER2013.items():
        files = sorted((root / name).glob("*.jpg"))
        out += [(f, label) for f in rng.sample(files, min(per_class, len(files)))]
    return out


@pytest.mark.slow
@pytest.mark.data
def test_fer2013_crop_is_never_none(analyzer, data_root):
    (path, _), = _fer_sample(data_root, 1)[:1]
    g = _read(path)
    assert g.shape == (48, 48)
    o = analyzer.analyze_image(g)
    assert o is not None and o.mode in ("detected", "whole-image")
    x0, y0, x1, y1 = o.box
    assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48
    flat = np.full((48, 48), 128, np.uint8)  # a blank square is not a face crop
    assert analyzer.analyze_image(flat) is None


@pytest.mark.slow
@pytest.mark.data
def test_fer2013_accuracy(analyzer, data_root):
    import cv2

    sample = _fer_sample(data_root, 50)
    imgs = [_read(p) for p, _ in sample]
    y = np.array([EMOTIONS.index(lab) for _, lab in sample])
    # the expression model alone on the dataset's own crops (48 -> 64, linear)
    x = np.stack([cv2.resize(g, (64, 64), interpolation=cv2.INTER_LINEAR) for g in imgs])
    acc_plain = float((analyzer._classify(x).argmax(1) == y).mean())
    t = time.perf_counter()
    acc_model = float((analyzer.classify(x).argmax(1) == y).mean())  # with the mirrored-face average
    fer_ms = (time.perf_counter() - t) / len(x) * 1e3
    # the full still-image path: detection on the padded crop, FER2013 framing, whole-image fallback
    obs = [analyzer.analyze_image(g) for g in imgs]
    assert all(o is not None for o in obs)
    acc_path = float((np.array([o.probs.argmax() for o in obs]) == y).mean())
    whole = sum(o.mode == "whole-image" for o in obs)
    print(f"\nFER2013 validation, {len(y)} images ({len(y) // 7}/class, balanced): model {acc_plain:.1%}, "
          f"+flip {acc_model:.1%}, "
          f"analyze_image {acc_path:.1%} ({whole} whole-image); chance 14.3%; FER {fer_ms:.2f} ms/face (+flip)")
    assert min(acc_plain, acc_model, acc_path) >= 0.45


# ------------------------------------------------------------------------------------------------ extractor


@pytest.mark.slow
def test_face_expert_probs_extractor(tmp_path: Path, analyzer, media):
    """The training extractor gives what the analysis feeds a network: the expert's probabilities of the
    image's face, or their mean over a video's frames sampled at 5 fps; a faceless file fails alone."""
    from emofuse import extract as ext
    from emofuse.corpora.manifest import Item
    from emofuse.media import MediaOptions, decode_image, iter_frames, probe

    names = ["single_face.jpg", "single_face.mp4", "no_face.jpg", "two_cities.wav"]
    items = [Item(id=n, corpus="media", paths=(media / n,)) for n in names]
    rep = ext.extract(items, "face-expert-probs", tmp_path, progress=False)
    assert (rep.n_done, rep.n_failed) == (2, 2)
    fails = dict(rep.failures)
    assert "no face found" in fails["no_face.jpg"] and "no image or video stream" in fails["two_cities.wav"]
    ids, X = ext.load_features(items[:2], "face-expert-probs", tmp_path)
    assert ids == names[:2] and X.shape == (2, 7)
    np.testing.assert_allclose(X.sum(1), 1.0, atol=1e-5)
    still = analyzer.analyze_image(decode_image(probe(media / "single_face.jpg")))  # the analysis's decoder
    np.testing.assert_allclose(X[0], still.probs, atol=1e-5)
    p = probe(media / "single_face.mp4")
    frames = [img for _, img in iter_frames(p, MediaOptions(fps=5.0))]
    video = analyzer.summarize(analyzer.analyze_frames(frames))
    np.testing.assert_allclose(X[1], [video.probs[e] for e in EMOTIONS], atol=1e-5)
