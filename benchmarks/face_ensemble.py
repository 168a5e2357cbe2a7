"""Face networks trained here, alone and averaged, with test-time views (prints figures; not a test).

Choices are made on the **selection part** (the 10 % of FER2013 train that ``configs/face_cnn_fer2013*.toml``
carve with seed 0 and that no member trained on); FER2013 PublicTest (the shared copy's ``validation`` folder)
is reported beside it for the choices already fixed. For each member network (``--weights``, default the
shipped ones, ``face_net.MEMBERS``) and each set of test-time views (the face and its mirror; plus four
2-pixel shifts of each), it prints accuracy, balanced accuracy, disgust / fear recall and ECE, then the same for
the mean of the members' calibrated probabilities (the ensemble ``analyze`` runs), with and without a
temperature fitted on the selection part.

    python benchmarks/face_ensemble.py [--data ../shared/data] [--weights a.safetensors,b.safetensors] [--fp32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def parts(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(selection faces, labels, PublicTest faces, labels): labels as FER2013 order indices."""
    from emofuse.features.face_net import ORDER
    from emofuse.training.data import labelled
    from emofuse.training.face_cnn import grey_faces
    from emofuse.training.protocols import carve_val
    from emofuse.corpora import item_key

    items = labelled(["fer2013"], str(data), "original", None, 0).items
    train = sorted((it for it in items if it.split == "train"), key=item_key)
    test = sorted((it for it in items if it.split in ("val", "dev")), key=item_key)
    _, sel = carve_val(train, np.random.default_rng([0, 99]), 0, 0.1, None)

    def lab(part: list) -> np.ndarray:  # type: ignore[type-arg]
        return np.array([ORDER.index(str(it.original_label)) for it in part])

    return grey_faces(sel), lab(sel), grey_faces(test), lab(test)


def views(x: np.ndarray, shifts: bool) -> list[np.ndarray]:
    """The test-time views of [n, 48, 48] faces: the face and its mirror, plus (``shifts``) each moved 2 px."""
    out = [x, x[:, :, ::-1]]
    if shifts:
        p = np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="edge")
        for dy, dx in ((0, 0), (0, 4), (4, 0), (4, 4)):
            v = p[:, dy:dy + 48, dx:dx + 48]
            out += [v, v[:, :, ::-1]]
    return out


def logits(net, x: np.ndarray, shifts: bool) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Mean logits over the views (FER2013 order), in batches of 256."""
    outs = []
    for i in range(0, len(x), 256):
        vs = views(x[i:i + 256], shifts)
        z = net.session.run(None, {"faces": (np.concatenate(vs).astype(np.float32) / 255.0)[:, None]})[0]
        outs.append(z.reshape(len(vs), -1, z.shape[-1]).mean(axis=0))
    return np.concatenate(outs)


def figures(y: np.ndarray, p: np.ndarray) -> str:
    from emofuse.features.face_net import ORDER
    from emofuse.training.metrics import classification_metrics, expected_calibration_error

    m = classification_metrics([ORDER[i] for i in y], [ORDER[i] for i in p.argmax(1)], list(ORDER))
    r = m["per_class_recall"]
    return (f"{m['WA']:6.1%} {m['UA']:6.1%} {r['disgust']:5.2f} {r['fear']:5.2f} "
            f"{expected_calibration_error(p, y):6.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--weights", default="", help="comma-separated member .safetensors (default: the shipped ones)")
    ap.add_argument("--fp32", action="store_true", help="the fp32 graphs instead of the shipped int8 ones")
    a = ap.parse_args()
    if not (a.data / "faces").is_dir():
        ap.error(f"needs FER2013 under {a.data / 'faces'} (--data)")
    from emofuse.experts import softmax
    from emofuse.features import face_net
    from emofuse.training.linear import fit_temperature

    members = [Path(w) for w in a.weights.split(",") if w] or face_net.member_paths()
    Xs, ys, Xt, yt = parts(a.data)
    print(f"selection part {len(ys)} faces, PublicTest {len(yt)}; graphs {'fp32' if a.fp32 else 'int8 where current'}")
    print(f"{'model':<34}{'views':>6} | selection: acc    bal   disg  fear    ECE | PublicTest: acc    bal   disg  fear    ECE")
    probs: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {False: [], True: []}
    for w in members:
        for f in (face_net.onnx_path(w),) if a.fp32 else (face_net.graph_path(True, w),):
            if not f.exists():
                face_net.export_onnx(w, f)
        net = face_net.load(threads=2, weights=w, int8=not a.fp32)
        for shifts in (False, True):
            t = time.perf_counter()
            zs, zt = logits(net, Xs, shifts), logits(net, Xt, shifts)
            ms = (time.perf_counter() - t) / (len(Xs) + len(Xt)) * 1e3
            T = net.temperature if not shifts else fit_temperature(zs, ys)  # a member's own T was fitted on 2 views
            ps, pt = softmax(zs / T), softmax(zt / T)
            probs[shifts].append((ps, pt))
            print(f"{w.stem:<34}{2 + 8 * shifts:>6} |            {figures(ys, ps)} |             {figures(yt, pt)}"
                  f"   ({ms:.2f} ms/face, T {T:.3f})", flush=True)
    if len(members) > 1:
        for shifts in (False, True):
            ps = np.mean([p for p, _ in probs[shifts]], axis=0)
            pt = np.mean([p for _, p in probs[shifts]], axis=0)
            print(f"{'mean of ' + str(len(members)) + ' members':<34}{2 + 8 * shifts:>6} |            "
                  f"{figures(ys, ps)} |             {figures(yt, pt)}")
            T = fit_temperature(np.log(ps), ys)
            print(f"{'  + temperature ' + format(T, '.3f'):<34}{2 + 8 * shifts:>6} |            "
                  f"{figures(ys, softmax(np.log(ps) / T))} |             {figures(yt, softmax(np.log(pt) / T))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
