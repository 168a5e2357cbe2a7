"""Multimodal / extra corpus loaders (ravdess_av, mmsa, mosei, isear, afew): tiny fixtures written here
in each corpus's own layout, plus the real RAVDESS audio-visual features (skipped when absent)."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from emofuse import taxonomy
from emofuse.corpora import afew, isear, mmsa, mosei, ravdess, ravdess_av
from emofuse.errors import InputError

CANON = set(taxonomy.EMOTIONS) | {None}


def touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def write_csv(p: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return p


@pytest.mark.parametrize("mod", [ravdess_av, mmsa, mosei, isear, afew])
def test_registered_entries(mod):
    for c in mod.CORPORA:
        assert c.layout and callable(c.load)
    assert {c.name for c in mod.CORPORA}


@pytest.mark.parametrize("mod", [ravdess_av, isear, afew])
def test_label_maps_are_canonical(mod):
    assert set(mod.LABEL_MAP.values()) <= CANON


def test_label_map_coverage():
    assert set(afew.LABEL_MAP) == {"Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"}
    assert set(afew.LABEL_MAP.values()) == set(taxonomy.EMOTIONS)
    assert set(isear.LABEL_MAP) == {"joy", "fear", "anger", "sadness", "disgust", "shame", "guilt"}
    assert isear.LABEL_MAP["shame"] is None and isear.LABEL_MAP["guilt"] is None
    assert ravdess_av.LABEL_MAP is ravdess.LABEL_MAP


@pytest.mark.parametrize("load,needle", [
    (ravdess_av.load, "ravdess_au_mfcc.npz"), (lambda r: mmsa.load(r, "mosi", trust_pickle=True), ".pkl"),
    (mosei.load, "label.csv"), (isear.load, "isear.csv"), (afew.load, "Train"),
])
def test_missing_root_names_layout_and_root(tmp_path, load, needle):
    gone = tmp_path / "nope"
    with pytest.raises(InputError) as e:
        load(gone)
    assert str(gone) in str(e.value) and needle in str(e.value)


@pytest.mark.parametrize("load,needle", [
    (ravdess_av.load, "ravdess_au_mfcc.npz"), (lambda r: mmsa.load(r, "mosi", trust_pickle=True), ".pkl"),
    (mosei.load, "label.csv"), (isear.load, "isear.csv"), (afew.load, "Train"),
])
def test_other_layout_names_layout_and_root(tmp_path, load, needle):
    touch(tmp_path / "Actor_01" / "03-01-01-01-01-01-01.wav")  # a RAVDESS speech folder, not theirs
    with pytest.raises(InputError) as e:
        load(tmp_path)
    assert str(tmp_path) in str(e.value) and needle in str(e.value)


# ------------------------------------------------------------------------------------------ ravdess_av

AV_IDS = ["01-01-05-01-02-01-01", "01-01-02-02-01-02-01", "01-01-07-01-01-01-02"]


def write_npz(d: Path, ids, n_cols=294) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    feats = np.arange(len(ids) * n_cols, dtype=np.float32).reshape(len(ids), n_cols)
    np.savez(d / "ravdess_au_mfcc.npz", ids=np.asarray(ids), features=feats)
    return d / "ravdess_au_mfcc.npz"


def write_folds(folds: Path, parts: dict[int, tuple[list[str], list[str]]]) -> None:
    for k, (train, test) in parts.items():
        for part, names in (("train", train), ("test", test)):
            p = folds / f"fold_{k}" / f"ravdess_{part}_fold_{k}.jsonl"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("".join(json.dumps({"wav": f"downloads/ravdess/audio/Actor_{n[-2:]}/{n}.wav"}) + "\n"
                                 for n in names))


def test_ravdess_av_fixture(tmp_path):
    data = tmp_path / "data"
    write_npz(data / "multimodal", AV_IDS + ["03-01-05-01-02-01-01", "junk"])
    m = ravdess_av.load(data / "multimodal")
    assert m.ids() == AV_IDS
    assert [it.speaker for it in m] == ["ravdess-01", "ravdess-01", "ravdess-02"]
    assert m.labels() == ["angry", "neutral", "disgusted"]
    assert [it.original_label for it in m] == ["angry", "calm", "disgust"]
    assert [it.extra["speech_id"] for it in m] == ["03-01-05-01-02-01-01", "03-01-02-02-01-02-01",
                                                   "03-01-07-01-01-01-02"]
    assert [it.extra["row"] for it in m] == [0, 1, 2]
    assert all(it.fold is None for it in m) and not any(it.paths for it in m)
    assert len(m.warnings) == 2 and any("not an audio-visual speech id" in w for w in m.warnings)
    assert any("not a RAVDESS id" in w for w in m.warnings)
    # the shared data folder works too, and so does the file itself
    assert ravdess_av.load(data).ids() == AV_IDS
    assert ravdess_av.load(data / "multimodal" / "ravdess_au_mfcc.npz").ids() == AV_IDS
    ids, au, mfcc = ravdess_av.features(data / "multimodal")
    assert list(ids[:3]) == AV_IDS and au.shape == (5, 35) and mfcc.shape == (5, 259)
    assert au[1, 0] == 294 and mfcc[1, 0] == 294 + 35


def test_ravdess_av_folds_by_actor(tmp_path):
    data = tmp_path / "data"
    write_npz(data / "multimodal", AV_IDS)
    speech = ["03" + i[2:] for i in AV_IDS]
    write_folds(data / "speech" / "ravdess_folds", {1: ([speech[2]], speech[:2]), 2: (speech[:2], [speech[2]])})
    m = ravdess_av.load(data / "multimodal")
    assert [it.fold for it in m] == [1, 1, 2]
    assert m.warnings == []


def test_ravdess_av_bad_arrays(tmp_path):
    write_npz(tmp_path, AV_IDS, n_cols=10)
    with pytest.raises(InputError, match="features has shape"):
        ravdess_av.load(tmp_path)
    np.savez(tmp_path / "ravdess_au_mfcc.npz", ids=np.array([{"a": 1}], dtype=object),
             features=np.zeros((1, 294), np.float32))
    with pytest.raises(InputError, match="pickled"):
        ravdess_av.features(tmp_path)


# ------------------------------------------------------------------------------------------ mmsa

def write_pkl(p: Path, sims: bool) -> Path:
    def split(ids, labels, texts):
        n = len(ids)
        d = {"id": np.asarray(ids, dtype=object), "raw_text": np.asarray(texts, dtype=object),
             "text_bert": np.zeros((n, 3, 4), np.float32), "audio": np.ones((n, 5, 2), np.float32),
             "vision": np.ones((n, 5, 3), np.float32), "audio_lengths": [5] * n, "vision_lengths": [4] * n,
             "regression_labels": np.asarray(labels, np.float32),
             "classification_labels": np.asarray([int(x > 0) for x in labels], np.float32)}
        if sims:
            for m in "TAV":
                d[f"regression_labels_{m}"] = np.asarray(labels, np.float32) * 0.5
        return d

    data = {"train": split(["v1$_$1", "v1$_$2"], [1.5, -3.0] if not sims else [0.6, -1.0], ["good", "bad"]),
            "valid": split(["v2$_$1"], [0.0], ["meh"]),
            "test": split(["v3$_$1", "v3$_$2"], [9.0, 3.0] if not sims else [9.0, 1.0], ["x", "great"])}
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as f:
        pickle.dump(data, f)
    return p


def test_mmsa_refuses_without_trust(tmp_path):
    p = write_pkl(tmp_path / "unaligned_50.pkl", sims=False)
    for call in (lambda: mmsa.load(p, "mosi"), lambda: mmsa.load(p, "mosi", trust_pickle="yes"),
                 lambda: mmsa.arrays(p, "train"), lambda: mmsa.CORPORA[0].load(tmp_path)):
        with pytest.raises(InputError) as e:
            call()
        assert "trust_pickle=True" in str(e.value) and "arbitrary code" in str(e.value)
        assert str(p) in str(e.value)


def test_mmsa_mosi(tmp_path):
    p = write_pkl(tmp_path / "unaligned_50.pkl", sims=False)
    m = mmsa.load(tmp_path, "mosi", trust_pickle=True)
    assert m.ids() == ["v1$_$1", "v1$_$2", "v2$_$1", "v3$_$2"]
    assert [it.split for it in m] == ["train", "train", "val", "test"]
    assert [it.valence for it in m] == pytest.approx([0.5, -1.0, 0.0, 1.0])
    assert [it.text for it in m] == ["good", "bad", "meh", "great"]
    assert all(it.label is None and it.corpus == "mmsa_mosi" for it in m)
    assert m[0].extra["video"] == "v1" and m[0].extra["clip"] == "1" and m[0].extra["sentiment"] == 1.5
    assert "valence_T" not in m[0].extra
    assert len(m.warnings) == 1 and "outside [-3, 3]" in m.warnings[0]
    a = mmsa.arrays(p, "val", trust_pickle=True)
    assert list(a["id"]) == ["v2$_$1"] and a["audio"].shape == (1, 5, 2) and "text_bert" in a
    assert mmsa.arrays(p, "test", trust_pickle=True)["vision"].shape == (2, 5, 3)


def test_mmsa_sims_unimodal(tmp_path):
    p = write_pkl(tmp_path / "unaligned_39.pkl", sims=True)
    m = mmsa.load(p, "sims", trust_pickle=True)
    assert [it.valence for it in m] == pytest.approx([0.6, -1.0, 0.0, 1.0])
    assert m[0].extra["valence_T"] == pytest.approx(0.3) and m[1].extra["valence_V"] == pytest.approx(-0.5)
    with pytest.raises(InputError, match="unknown MMSA corpus"):
        mmsa.load(p, "iemocap", trust_pickle=True)


# ------------------------------------------------------------------------------------------ mosei / sims2

LABEL_HEADER = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]


def test_mosei_label_csv(tmp_path):
    write_csv(tmp_path / "label.csv", LABEL_HEADER, [
        ["-3g-5yygRdQ", "0", "it was great", "2.4", "", "", "", "Positive", "train"],
        ["-3g-5yygRdQ", "1", "awful", "-3", "", "", "", "Negative", "valid"],
        ["zz", "4", "hm", "4.5", "", "", "", "Positive", "test"],
        ["zz", "5", "so so", "0", "", "", "", "Neutral", "dev-ish"],
    ])
    touch(tmp_path / "Raw" / "-3g-5yygRdQ" / "0.mp4")
    m = mosei.load(tmp_path)
    assert m.ids() == ["-3g-5yygRdQ$_$0", "-3g-5yygRdQ$_$1"]
    assert [it.split for it in m] == ["train", "val"]
    assert [it.valence for it in m] == pytest.approx([0.8, -1.0])
    assert m[0].paths == (tmp_path / "Raw" / "-3g-5yygRdQ" / "0.mp4",) and m[1].paths == ()
    assert m[0].extra["annotation"] == "Positive" and m[0].extra["video"] == "-3g-5yygRdQ"
    assert all(it.label is None and it.corpus == "mosei" for it in m)
    assert len(m.warnings) == 3  # out-of-scale label, unknown mode, missing raw clip
    assert any("outside" in w or "not a number" in w for w in m.warnings)


def test_sims2_label_csv(tmp_path):
    write_csv(tmp_path / "label.csv", LABEL_HEADER, [
        ["video_0001", "0001", "很好", "0.8", "1.0", "0.6", "x", "Positive", "train"],
        ["video_0001", "0002", "不好", "-0.4", "-0.2", "-0.6", "-1", "Negative", "test"],
        ["video_0002", "0001", "一般", "2.0", "0", "0", "0", "Positive", "valid"],
    ])
    m = mosei.CORPORA[1].load(tmp_path)
    assert mosei.CORPORA[1].name == "sims2"
    assert m.ids() == ["video_0001$_$0001", "video_0001$_$0002"]
    assert [it.valence for it in m] == pytest.approx([0.8, -0.4])
    assert m[0].extra["valence_T"] == pytest.approx(1.0) and "valence_V" not in m[0].extra
    assert m[1].extra["valence_V"] == pytest.approx(-1.0)
    assert len(m.warnings) == 2  # label_V 'x' kept without it; label 2.0 outside [-1, 1]


def test_mosei_wrong_columns(tmp_path):
    write_csv(tmp_path / "label.csv", ["name", "split", "sentiment"], [["a", "train", "1"]])
    with pytest.raises(InputError, match="missing"):
        mosei.load(tmp_path)


# ------------------------------------------------------------------------------------------ isear

def test_isear_two_columns(tmp_path):
    write_csv(tmp_path / "isear.csv", ["emotion", "text"], [
        ["joy", "I passed my exam."], ["shame", "I lied to a friend."],
        ["guilt", "I forgot her birthday."], ["boredom", "Nothing happened."], ["fear", "[ No response.]"],
    ])
    m = isear.load(tmp_path)
    assert m.labels() == ["happy", None, None]
    assert [it.original_label for it in m] == ["joy", "shame", "guilt"]
    assert m[0].text == "I passed my exam." and m[0].speaker is None and m[0].split is None
    assert len(m.warnings) == 2


def test_isear_headerless(tmp_path):
    write_csv(tmp_path / "isear.csv", [], [["sadness", "My dog died."], ["anger", "He broke my bike."]])
    m = isear.load(tmp_path)
    assert m.labels() == ["sad", "angry"] and m.warnings == []


def test_isear_databank(tmp_path):
    header = ["ID", "CITY", "COUN", "EMOT", "Field1", "Field3", "MYKEY", "SIT", "STATE"]
    write_csv(tmp_path / "isear_databank.csv", header, [
        ["11001", "1", "1", "1", "joy", "x", "110011", "On days when I feel close to my partner.", "1"],
        ["11001", "1", "1", "2", "fear", "x", "110012", "Every time I imagine thatá someone is ill.", "1"],
        ["11002", "1", "1", "5", "disgust", "x", "110025", "At a gathering I found myself.", "1"],
        ["11002", "1", "1", "7", "guilt", "x", "110027", "I feel guilty when.", "1"],
    ], delimiter="|")
    m = isear.load(tmp_path)
    assert m.ids() == ["110011", "110012", "110025", "110027"]
    assert m.labels() == ["happy", "fearful", "disgusted", None]
    assert m.speakers() == ["isear-11001", "isear-11002"]
    assert m[1].text == "Every time I imagine that someone is ill."
    assert m.warnings == []


# ------------------------------------------------------------------------------------------ afew

def test_afew_layout(tmp_path):
    for split, emo, clip in [("Train", "Angry", "000046280"), ("Train", "Surprise", "000149120"),
                             ("Val", "Neutral", "000003040"), ("Val", "Disgust", "000100200")]:
        touch(tmp_path / split / emo / f"{clip}.avi")
    touch(tmp_path / "Train" / "Angry" / "notes.txt")
    touch(tmp_path / "Train" / "Contempt" / "000000001.avi")
    touch(tmp_path / "Test" / "000777000.avi")
    m = afew.load(tmp_path)
    assert m.ids() == ["train/000046280", "train/000149120", "val/000100200", "val/000003040", "test/000777000"]
    assert m.labels() == ["angry", "surprised", "disgusted", "neutral", None]
    assert [it.split for it in m] == ["train", "train", "val", "val", "test"]
    assert m[0].paths == (tmp_path / "Train" / "Angry" / "000046280.avi",)
    assert len(m.warnings) == 2


def test_afew_empty(tmp_path):
    (tmp_path / "Train" / "Angry").mkdir(parents=True)
    with pytest.raises(InputError, match="no labelled clips"):
        afew.load(tmp_path)


# ------------------------------------------------------------------------------------------ real data

def test_ravdess_av_real(data_root):
    if not (data_root / "multimodal" / "ravdess_au_mfcc.npz").is_file():
        pytest.skip("multimodal/ravdess_au_mfcc.npz not in the data folder")
    m = ravdess_av.load(data_root / "multimodal")
    assert len(m) == 1440 and len(m.speakers()) == 24 and m.warnings == []
    ids, au, mfcc = ravdess_av.features(data_root)
    assert au.shape == (1440, 35) and mfcc.shape == (1440, 259) and au.dtype == np.float32
    assert [it.id for it in m] == list(ids)
    if (data_root / "speech" / "ravdess").is_dir():
        speech = {it.id: it for it in ravdess.load(data_root / "speech" / "ravdess")}
        for it in m:
            s = speech[it.extra["speech_id"]]
            assert (it.label, it.original_label, it.speaker) == (s.label, s.original_label, s.speaker)
            assert it.fold == s.fold
    if (data_root / "speech" / "ravdess_folds").is_dir():
        assert all(it.fold is not None for it in m)
        by_actor: dict[str, set] = {}
        for it in m:
            by_actor.setdefault(it.speaker, set()).add(it.fold)
        assert all(len(f) == 1 for f in by_actor.values())
        assert len({it.fold for it in m}) == 6
