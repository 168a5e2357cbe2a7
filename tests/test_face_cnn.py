"""The face-expression CNN (emofuse.training.face_cnn, emofuse.features.face_net): config checks, the
augmentation, and a tiny real run on FER2013 that is paused, resumed, compared with an uninterrupted one,
saved and exported to the ONNX graph the analysis runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emofuse.errors import InputError
from emofuse.training.config import dump_config, loads_config

CFG = """
name = "face"
seed = 0
out = "{out}"
[data]
corpora = ["fer2013"]
root = "{root}"
limit = 120
[protocol]
name = "holdout"
[face_cnn]
width = 4
epochs = 2
batch_size = 16
checkpoint_every = 2
threads = 1
val_fraction = 0.2
"""


def test_config_round_trips_and_bad_options_are_named() -> None:
    cfg = loads_config(CFG.format(out="/tmp/x", root="/tmp"))
    assert cfg.kind == "face_cnn" and cfg.face_cnn.width == 4 and loads_config(dump_config(cfg)) == cfg
    for bad, msg in ((CFG + "select = 'top5'\n", "face_cnn.select"), (CFG + "lr = 'fast'\n", "face_cnn.lr"),
                     (CFG + "erase = 2.0\n", "erase in"),
                     (CFG + "precision = 'fp8'\n", "face_cnn.precision"), (CFG + "wings = 1\n", "face_cnn.wings"),
                     (CFG + "[finetune]\nrank = 2\n", "run has no .*other training table")):
        with pytest.raises(InputError, match=msg):
            loads_config(bad.format(out="/tmp/x", root="/tmp"))


def test_augmentation_keeps_shape_and_range_and_is_seeded() -> None:
    import torch

    from emofuse.training.face_cnn import FaceCNNOptions, augment

    x = torch.rand(8, 1, 48, 48)
    opts = FaceCNNOptions()
    a = augment(torch, x, opts, torch.Generator().manual_seed(1))
    b = augment(torch, x, opts, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1 and torch.equal(a, b)
    assert not torch.allclose(a, x)
    plain = augment(torch, x, FaceCNNOptions(rotate=0, scale=0, shift=0, flip=False, erase=0),
                    torch.Generator().manual_seed(1))
    assert torch.allclose(plain, x, atol=1e-5)  # the identity map samples the image back


@pytest.mark.slow
def test_a_paused_run_resumes_to_the_same_weights_and_exports(tmp_path: Path, data_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.numpy import load_file

    from emofuse.features.face_net import export_onnx
    from emofuse.training.run import run

    if not (data_root / "faces" / "fer2013").is_dir():
        pytest.skip("FER2013 not in the shared data")
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "cache"))  # the decoded faces are cached there
    whole = loads_config(CFG.format(out=tmp_path / "whole", root=data_root))
    with pytest.raises(InputError, match=".safetensors"):
        run(whole, progress=False, save=tmp_path / "face.onnx")  # refused before training
    r = run(whole, progress=False, save=tmp_path / "whole.safetensors")
    assert r["best_epoch"] in (1, 2) and r["test"]["split"] == ["val"] and r["calibration"]["temperature"] > 0
    # a warm restart from the saved network starts from its weights; one trained on another carve is refused
    warm = loads_config((CFG + f"init_from = '{tmp_path / 'whole.safetensors'}'\n")
                        .format(out=tmp_path / "warm", root=data_root).replace("epochs = 2", "epochs = 1"))
    w = run(warm, progress=False)
    assert w["best_epoch"] == 1 and w["options"]["init_from"].endswith("whole.safetensors")
    import torch

    from emofuse.features.face_net import face_cnn, load_torch
    from emofuse.training.face_cnn import _warm_start

    fresh, saved = face_cnn(torch, 4, 0.3), load_torch(torch, tmp_path / "whole.safetensors")[0]
    _warm_start(torch, fresh, tmp_path / "whole.safetensors", warm.face_cnn, 0, r["n_fit"])
    for k, v in saved.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    other = loads_config((CFG + f"init_from = '{tmp_path / 'whole.safetensors'}'\n")
                         .format(out=tmp_path / "other", root=data_root).replace("seed = 0", "seed = 1"))
    with pytest.raises(InputError, match="not trained on this run's carve"):
        run(other, progress=False)
    paused = loads_config(CFG.format(out=tmp_path / "paused", root=data_root))
    p = run(paused, progress=False, stop_after_steps=3)
    assert p["stopped"] and p["step"] == 3
    with pytest.raises(InputError, match="--resume"):
        run(paused, progress=False)  # a checkpoint is never overwritten silently
    run(paused, progress=False, resume=True, save=tmp_path / "paused.safetensors")
    a, b = load_file(str(tmp_path / "whole.safetensors")), load_file(str(tmp_path / "paused.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k].astype(np.float32), b[k].astype(np.float32), atol=2e-3, err_msg=k)
    onnx = export_onnx(tmp_path / "whole.safetensors", tmp_path / "face.onnx")  # checked against torch inside
    import onnxruntime as ort

    z = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(
        None, {"faces": np.random.default_rng(0).random((3, 1, 48, 48), dtype=np.float32)})[0]
    assert z.shape == (3, 7) and np.isfinite(z).all()
    from emofuse.features.face_net import FaceNet, read_meta

    meta = read_meta(tmp_path / "whole.safetensors")
    assert meta["temperature"] == r["calibration"]["temperature"] and meta["test"]["WA"] == r["test"]["WA"]
    net = FaceNet(onnx, meta, threads=1)
    faces = np.random.default_rng(1).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    p = net.predict_proba(faces)
    assert p.shape == (4, 7) and np.allclose(p.sum(1), 1)
    # the canonical order: FER2013's "happy" column lands on canonical "happy"
    from emofuse.taxonomy import EMOTIONS

    assert np.allclose(p[:, EMOTIONS.index("happy")], _softmax(net.logits(faces) / net.temperature)[:, 3])
    with pytest.raises(InputError, match="not a face network"):
        read_meta(_foreign(tmp_path))


    # the analysis side: set-up exports the shipped weights' graph, the face expert reads it
    from emofuse.errors import MissingComponentError
    from emofuse.features import face as ff
    from emofuse.features import face_net

    monkeypatch.setattr(face_net, "MEMBERS", (face_net.WEIGHTS,))  # one network here
    monkeypatch.setattr(face_net, "weights_path", lambda: tmp_path / "none.safetensors")
    with pytest.raises(MissingComponentError, match="ships none"):
        ff.FaceAnalyzer(ff.FaceOptions(expert="face-cnn"))
    monkeypatch.setattr(face_net, "weights_path", lambda: tmp_path / "whole.safetensors")
    with pytest.raises(MissingComponentError, match="emofuse setup"):
        ff.FaceAnalyzer(ff.FaceOptions(expert="face-cnn"))
    assert face_net.setup(verbose=False)["face-cnn"] == str(face_net.onnx_path())
    crops = np.random.default_rng(2).integers(0, 256, (3, 64, 64), dtype=np.uint8)
    with ff.FaceAnalyzer(ff.FaceOptions(expert="face-cnn", threads=1)) as cnn, \
            ff.FaceAnalyzer(ff.FaceOptions(expert="ensemble", threads=1)) as both, \
            ff.FaceAnalyzer(ff.FaceOptions(expert="fer-mini-xception", threads=1)) as fer:
        pc, pb, pf = cnn.classify(crops), both.classify(crops), fer.classify(crops)
    assert pc.shape == (3, 7) and np.allclose(pb, (pc + pf) / 2) and not np.allclose(pc, pf)
    with pytest.raises(InputError, match="FaceOptions.expert"):
        ff.FaceOptions(expert="vgg-face")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _foreign(tmp: Path) -> Path:
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2, np.float32)}, str(tmp / "other.safetensors"), metadata={"emofuse": "{}"})
    return tmp / "other.safetensors"


@pytest.mark.slow
def test_the_shipped_network_runs_its_int8_graph_made_from_its_own_weights() -> None:
    from emofuse.features import face_net

    if not face_net.weights_path().exists():
        pytest.skip("this build ships no face network")
    for w in face_net.member_paths():
        g = face_net.int8_path(w)
        assert g is not None and face_net.graph_path(True, w) == g  # current: made from these very weights
        meta = face_net.read_meta(w)
        assert meta["test"]["WA"] > 0.6 and meta["order"] == list(face_net.ORDER)
    import cv2

    from conftest import MEDIA

    face = cv2.resize(cv2.imread(str(MEDIA / "single_face.jpg"), cv2.IMREAD_GRAYSCALE), (48, 48))
    faces = np.stack([face, face[:, ::-1], np.full((48, 48), 128, np.uint8)])
    q, f = face_net.load(threads=1).predict_proba(faces), face_net.load(threads=1, int8=False).predict_proba(faces)
    assert np.abs(q - f).max() < 0.1 and (q.argmax(1) == f.argmax(1))[:2].all()
    # several shipped members: the analysis reads the mean of their calibrated probabilities
    nets = [face_net.load(threads=1, weights=w) for w in face_net.member_paths()]
    ens = face_net.load(threads=1)
    if len(nets) > 1:
        assert isinstance(ens, face_net.FaceEnsemble)
        np.testing.assert_allclose(ens.predict_proba(faces), np.mean([n.predict_proba(faces) for n in nets], axis=0))


def test_an_ensemble_is_the_mean_of_its_members_and_a_missing_member_is_named(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from emofuse.errors import MissingComponentError
    from emofuse.features import face_net

    class Net:
        def __init__(self, p: np.ndarray) -> None:
            self.p = p

        def predict_proba(self, faces: np.ndarray) -> np.ndarray:
            return np.tile(self.p, (len(faces), 1))

    a, b = np.eye(7)[0], np.eye(7)[3]
    out = face_net.FaceEnsemble([Net(a), Net(b)]).predict_proba(np.zeros((2, 48, 48), np.uint8))  # type: ignore[list-item]
    np.testing.assert_allclose(out, np.tile((a + b) / 2, (2, 1)))
    monkeypatch.setattr(face_net, "weights_path", lambda: tmp_path / "face-cnn.safetensors")
    monkeypatch.setattr(face_net, "MEMBERS", ("face-cnn.safetensors", "face-cnn-b.safetensors"))
    assert [p.name for p in face_net.member_paths()] == ["face-cnn.safetensors", "face-cnn-b.safetensors"]
    assert face_net.int8_name(tmp_path / "face-cnn-b.safetensors") == "face-cnn-b.int8.onnx"
    with pytest.raises(MissingComponentError, match="no face network at"):
        face_net.load()
