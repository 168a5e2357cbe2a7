"""Corpus loaders for EmoDB, CREMA-D, TESS, IEMOCAP, CK+ and AffectNet: tiny fixtures written here in
each corpus's official layout (empty media files: loaders never decode), ids, speakers, labels, folds,
V/A rescaling, label-map coverage, layout errors and warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import emofuse.corpora.affectnet as affectnet
import emofuse.corpora.ckplus as ckplus
import emofuse.corpora.crema_d as crema_d
import emofuse.corpora.emodb as emodb
import emofuse.corpora.iemocap as iemocap
import emofuse.corpora.tess as tess
from emofuse import taxonomy
from emofuse.corpora.manifest import Manifest
from emofuse.errors import InputError

CANON = set(taxonomy.EMOTIONS)
MODULES = (emodb, crema_d, tess, iemocap, ckplus, affectnet)


def touch(p: Path, text: str = "") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def by_id(m: Manifest) -> dict:
    return {it.id: it for it in m}


# ------------------------------------------------------------------------------------------ registry shape

@pytest.mark.parametrize("mod", MODULES)
def test_module_shape(mod):
    assert mod.SUBDIR == ""
    assert mod.__doc__ and "Licence" in mod.__doc__ and "rules" in mod.__doc__.lower() and mod.LAYOUT
    for c in mod.CORPORA:
        assert c.layout == mod.LAYOUT and c.subdir == "" and callable(c.load)
    assert set(mod.LABEL_MAP.values()) <= CANON | {None}


def test_registered_names():
    names = [c.name for mod in MODULES for c in mod.CORPORA]
    assert names == ["emodb", "crema_d", "tess", "iemocap4", "iemocap6", "ckplus", "affectnet"]


# ------------------------------------------------------------------------------------------ label maps

def test_label_map_coverage():
    # every original label is a key, and the stated drop rules hold
    assert set(emodb.LABEL_MAP) == set(emodb.CODES.values())
    assert emodb.LABEL_MAP["boredom"] is None
    assert {v for v in emodb.LABEL_MAP.values() if v} == CANON - {"surprised"}
    assert set(crema_d.LABEL_MAP) == set(crema_d.CODES) == {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}
    assert None not in crema_d.LABEL_MAP.values()
    assert set(tess.LABEL_MAP.values()) == CANON and tess.LABEL_MAP["pleasant_surprise"] == "surprised"
    assert set(tess.ALIASES.values()) == set(tess.LABEL_MAP)
    for lm in (iemocap.LABEL_MAP4, iemocap.LABEL_MAP6, iemocap.CLASS4, iemocap.CLASS6):
        assert set(lm) == set(iemocap.ORIGINALS)
    assert iemocap.LABEL_MAP4["exc"] == iemocap.LABEL_MAP4["hap"] == "happy"
    assert {k for k, v in iemocap.LABEL_MAP4.items() if v} == {"neu", "hap", "exc", "ang", "sad"}
    assert iemocap.LABEL_MAP6["fru"] is None and iemocap.CLASS6["fru"] == "fru"
    assert {v for v in iemocap.CLASS6.values() if v} == {"neu", "hap", "sad", "ang", "exc", "fru"}
    assert {v for v in iemocap.CLASS4.values() if v} == {"neu", "hap", "sad", "ang"}
    assert set(ckplus.LABEL_MAP) == set(ckplus.CODES.values()) and ckplus.LABEL_MAP["contempt"] is None
    assert {v for v in ckplus.LABEL_MAP.values() if v} == CANON
    assert set(affectnet.LABEL_MAP) == set(affectnet.CODES.values()) and affectnet.LABEL_MAP["contempt"] is None
    assert {v for v in affectnet.LABEL_MAP.values() if v} == CANON
    assert set(affectnet.ALIASES.values()) == set(affectnet.LABEL_MAP)


# ------------------------------------------------------------------------------------------ EmoDB

def make_emodb(tmp: Path) -> Path:
    root = tmp / "emodb"
    for n in ("03a01Fa", "08b10Lc", "16a07Wb", "11b03Tb"):
        touch(root / "wav" / f"{n}.wav")
    touch(root / "wav" / "readme_copy.wav")  # unparseable name
    touch(root / "wav" / "09a01Xa.wav")  # unknown emotion letter
    touch(root / "erkennung.txt")
    return root


def test_emodb(tmp_path):
    m = emodb.load(make_emodb(tmp_path))
    its = by_id(m)
    assert sorted(its) == ["03a01Fa", "08b10Lc", "11b03Tb", "16a07Wb"]
    a = its["03a01Fa"]
    assert (a.corpus, a.speaker, a.label, a.original_label) == ("emodb", "emodb-03", "happy", "happiness")
    assert a.text == "Der Lappen liegt auf dem Eisschrank." and a.extra["gender"] == "male"
    assert a.paths[0].name == "03a01Fa.wav" and a.fold is None and a.split is None
    b = its["08b10Lc"]
    assert b.label is None and b.original_label == "boredom" and b.extra["version"] == "c"
    assert its["16a07Wb"].label == "angry" and its["11b03Tb"].label == "sad"
    assert m.speakers() == ["emodb-03", "emodb-08", "emodb-11", "emodb-16"]
    w = " | ".join(m.warnings)
    assert "readme_copy.wav" in w and "09a01Xa.wav" in w and len(m.warnings) == 2


def test_emodb_folds(tmp_path):
    root = make_emodb(tmp_path)
    for k, names in ((1, ["03a01Fa", "08b10Lc"]), (2, ["16a07Wb", "11b03Tb"])):
        d = tmp_path / "emodb_folds" / f"fold_{k}"
        d.mkdir(parents=True)
        (d / f"emodb_test_fold_{k}.jsonl").write_text("".join(json.dumps({"wav": f"x/{n}.wav"}) + "\n" for n in names))
        (d / f"emodb_train_fold_{k}.jsonl").write_text("")
    its = by_id(emodb.load(root))
    assert its["03a01Fa"].fold == 1 and its["11b03Tb"].fold == 2


# ------------------------------------------------------------------------------------------ CREMA-D

def make_crema(tmp: Path) -> Path:
    root = tmp / "CREMA-D"
    for n in ("1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1091_TSI_NEU_XX", "1045_IEO_DIS_LO"):
        touch(root / "AudioWAV" / f"{n}.wav")
    touch(root / "AudioWAV" / "1001_DFA_ANG.wav")  # unparseable
    touch(root / "AudioWAV" / "1002_DFA_BOR_XX.wav")  # unknown emotion
    touch(root / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    touch(root / "VideoDemographics.csv", "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n")
    return root


def test_crema_d(tmp_path):
    m = crema_d.load(make_crema(tmp_path))
    its = by_id(m)
    assert sorted(its) == ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1045_IEO_DIS_LO", "1091_TSI_NEU_XX"]
    a = its["1001_DFA_ANG_XX"]
    assert a.speaker == "crema_d-1001" and a.label == "angry" and a.original_label == "ANG"
    assert [p.suffix for p in a.paths] == [".wav", ".flv"] and a.extra["video"] is True
    assert a.text == "Don't forget a jacket" and a.extra["gender"] == "male" and a.extra["intensity"] is None
    h = its["1001_IEO_HAP_HI"]
    assert h.label == "happy" and len(h.paths) == 1 and h.extra["intensity"] == "high"
    assert its["1045_IEO_DIS_LO"].label == "disgusted" and its["1045_IEO_DIS_LO"].extra["gender"] is None
    assert its["1091_TSI_NEU_XX"].label == "neutral"
    assert m.speakers() == ["crema_d-1001", "crema_d-1045", "crema_d-1091"]
    w = " | ".join(m.warnings)
    assert "1001_DFA_ANG.wav" in w and "1002_DFA_BOR_XX.wav" in w


# ------------------------------------------------------------------------------------------ TESS

def make_tess(tmp: Path, nested: bool = False) -> Path:
    root = tmp / "TESS"
    base = root / "TESS Toronto emotional speech set data" if nested else root
    touch(base / "OAF_angry" / "OAF_back_angry.wav")
    touch(base / "OAF_Fear" / "OAF_bar_fear.wav")
    touch(base / "YAF_pleasant_surprised" / "YAF_back_ps.wav")
    touch(base / "YAF_neutral" / "YAF_back_neutral.wav")
    touch(base / "YAF_neutral" / "YAF_back_sad.wav")  # emotion differs from folder
    touch(base / "YAF_neutral" / "backneutral.wav")  # unparseable
    return root


@pytest.mark.parametrize("nested", [False, True])
def test_tess(tmp_path, nested):
    m = tess.load(make_tess(tmp_path, nested))
    its = by_id(m)
    assert sorted(its) == ["OAF_back_angry", "OAF_bar_fear", "YAF_back_neutral", "YAF_back_ps"]
    ps = its["YAF_back_ps"]
    assert (ps.speaker, ps.label, ps.original_label) == ("tess-YAF", "surprised", "pleasant_surprise")
    assert ps.text == "Say the word back"
    assert its["OAF_bar_fear"].label == "fearful" and its["OAF_bar_fear"].speaker == "tess-OAF"
    assert m.speakers() == ["tess-OAF", "tess-YAF"]
    w = " | ".join(m.warnings)
    assert "YAF_back_sad.wav" in w and "backneutral.wav" in w


# ------------------------------------------------------------------------------------------ IEMOCAP

EVAL = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
A-E3:\tval 3; act 2; dom  3;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M000\texc\t[4.0000, 5.0000, 1.0000]
C-E1:\tExcited;\t()

[14.8872 - 18.0175]\tSes01F_impro01_F001\tfru\t[2.0000, 3.5000, 3.5000]

[19.2900 - 20.7875]\tSes01F_impro01_M001\txxx\t[1.0000, 2.0000, 2.5000]

[21.0 - 22.0]\tSes01F_impro01_F002\tneu
"""
EVAL5 = "[1.0000 - 2.0000]\tSes05M_script01_1_F003\tang\t[1.5000, 4.5000, 4.0000]\n"
TRANS = """Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
Ses01F_impro01_M000 [010.0100-011.3925]: Do you have your forms?
Ses01F_impro01_F001 [014.8872-018.0175]: Yeah.
M: [BREATHING]
"""


def make_iemocap(tmp: Path) -> Path:
    root = tmp / "IEMOCAP_full_release"
    touch(root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt", EVAL)
    touch(root / "Session1" / "dialog" / "transcriptions" / "Ses01F_impro01.txt", TRANS)
    for t in ("F000", "M000", "F001", "M001", "F002"):
        touch(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / f"Ses01F_impro01_{t}.wav")
    touch(root / "Session5" / "dialog" / "EmoEvaluation" / "Ses05M_script01_1.txt", EVAL5)
    touch(root / "Session5" / "sentences" / "wav" / "Ses05M_script01_1" / "Ses05M_script01_1_F003.wav")
    return root


def test_iemocap4(tmp_path):
    m = iemocap.load(make_iemocap(tmp_path), classes=4)
    its = by_id(m)
    assert sorted(its) == ["Ses01F_impro01_F000", "Ses01F_impro01_F001", "Ses01F_impro01_M000",
                           "Ses01F_impro01_M001", "Ses05M_script01_1_F003"]
    f0 = its["Ses01F_impro01_F000"]
    assert f0.corpus == "iemocap4" and f0.speaker == "iemocap-Ses01F" and f0.fold == 1
    assert f0.label == "neutral" and f0.text == "Excuse me." and f0.extra["class"] == "neu"
    assert f0.valence == pytest.approx(-0.25) and f0.arousal == pytest.approx(-0.25)
    assert f0.extra["start"] == pytest.approx(6.2901) and f0.extra["improvised"] is True
    assert f0.paths[0].parts[-4:] == ("sentences", "wav", "Ses01F_impro01", "Ses01F_impro01_F000.wav")
    m0 = its["Ses01F_impro01_M000"]  # the male turn of a session-1 dialog recorded with the female marked
    assert m0.speaker == "iemocap-Ses01M" and m0.label == "happy" and m0.original_label == "exc"
    assert m0.extra["class"] == "hap" and m0.valence == 0.5 and m0.arousal == 1.0 and m0.extra["dominance"] == -1.0
    fru = its["Ses01F_impro01_F001"]
    assert fru.label is None and fru.extra["class"] is None and fru.arousal == pytest.approx(0.25)
    x = its["Ses01F_impro01_M001"]
    assert x.label is None and x.valence == -1.0 and x.text is None
    s5 = its["Ses05M_script01_1_F003"]
    assert s5.fold == 5 and s5.speaker == "iemocap-Ses05F" and s5.label == "angry" and s5.extra["improvised"] is False
    assert m.speakers() == ["iemocap-Ses01F", "iemocap-Ses01M", "iemocap-Ses05F"]
    assert sorted({it.fold for it in m}) == [1, 5]
    w = " | ".join(m.warnings)
    assert "Ses01F_impro01_F002" in w  # line without [V, A, D]
    assert "Session5" in w  # session without transcriptions reported


def test_iemocap6_and_registry(tmp_path):
    root = make_iemocap(tmp_path)
    m = iemocap.CORPORA[1].load(root)
    assert iemocap.CORPORA[1].name == "iemocap6"
    its = by_id(m)
    assert its["Ses01F_impro01_F001"].extra["class"] == "fru" and its["Ses01F_impro01_F001"].label is None
    assert its["Ses01F_impro01_M000"].extra["class"] == "exc" and its["Ses01F_impro01_M000"].label == "happy"
    assert its["Ses01F_impro01_M001"].extra["class"] is None
    std = m.filter(predicate=lambda it: it.extra["class"] is not None)
    assert len(std) == 4 and all(it.corpus == "iemocap6" for it in m)
    assert len(iemocap.CORPORA[0].load(root).filter(predicate=lambda it: it.extra["class"] is not None)) == 3
    with pytest.raises(InputError, match="4 or 6"):
        iemocap.load(root, classes=5)


def test_iemocap_missing_wav_reported(tmp_path):
    root = make_iemocap(tmp_path)
    (root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_M001.wav").unlink()
    m = iemocap.load(root)
    assert "Ses01F_impro01_M001" not in m.ids() and any("wav missing" in w for w in m.warnings)


# ------------------------------------------------------------------------------------------ CK+

def make_ckplus(tmp: Path) -> Path:
    root = tmp / "CK+"
    img, emo = root / "cohn-kanade-images", root / "Emotion"
    for s, q, n, code in (("S005", "001", 11, "   3.0000000e+00"), ("S010", "002", 4, "   2.0000000e+00"),
                          ("S010", "004", 3, None), ("S011", "001", 5, "   7.0000000e+00"),
                          ("S012", "001", 2, "nonsense")):
        for f in range(1, n + 1):
            touch(img / s / q / f"{s}_{q}_{f:08d}.png")
        if code is not None:
            touch(emo / s / q / f"{s}_{q}_{n:08d}_emotion.txt", code + "\n")
    touch(img / "S005" / "001" / ".DS_Store")
    touch(emo / "S099" / "001" / "S099_001_00000009_emotion.txt", "1.0\n")  # no images: reported
    return root


def test_ckplus(tmp_path):
    root = make_ckplus(tmp_path)
    m = ckplus.load(root)
    its = by_id(m)
    assert sorted(its) == ["S005_001_00000011", "S010_002_00000004", "S011_001_00000005"]
    a = its["S005_001_00000011"]
    assert (a.speaker, a.label, a.original_label, a.extra["frame"]) == ("ckplus-S005", "disgusted", "disgust", "peak")
    c = its["S010_002_00000004"]
    assert c.label is None and c.original_label == "contempt"  # contempt dropped, kept as None
    assert its["S011_001_00000005"].label == "surprised"
    w = " | ".join(m.warnings)
    assert "no Emotion file" in w and "S010/004" in w  # unlabelled sequence reported
    assert "S012_001_00000002_emotion.txt" in w  # unparseable emotion file
    assert "S099_001_00000009_emotion.txt" in w  # emotion file without images
    m2 = ckplus.load(root, neutral_first=True, peak_frames=2)
    its2 = by_id(m2)
    assert {"S005_001_00000010", "S005_001_00000011", "S005_001_00000001"} <= set(its2)
    assert its2["S005_001_00000001"].label == "neutral" and its2["S005_001_00000001"].extra["frame"] == "onset"
    assert its2["S005_001_00000010"].label == "disgusted"
    assert len(m2) == 3 * 2 + 3


# ------------------------------------------------------------------------------------------ AffectNet

def test_affectnet_words_and_codes(tmp_path):
    root = tmp_path / "affectnet"
    touch(root / "train" / "happy" / "a.jpg")
    touch(root / "train" / "contempt" / "b.jpg")
    touch(root / "train" / "anger" / "c.png")
    touch(root / "train" / "anger" / "notes.txt")  # not an image
    touch(root / "val" / "3" / "d.jpg")
    touch(root / "val" / "0" / "e.jpg")
    touch(root / "val" / "9" / "f.jpg")  # uncertain: reported
    touch(root / "val" / "misc" / "g.jpg")  # unknown class folder
    m = affectnet.load(root)
    its = by_id(m)
    assert sorted(its) == ["train/anger/c", "train/contempt/b", "train/happy/a", "val/0/e", "val/3/d"]
    assert its["train/happy/a"].label == "happy" and its["train/happy/a"].split == "train"
    assert its["train/contempt/b"].label is None and its["train/contempt/b"].original_label == "contempt"
    assert its["val/3/d"].label == "surprised" and its["val/3/d"].original_label == "surprise"
    assert its["val/3/d"].split == "val" and its["val/0/e"].label == "neutral"
    assert its["train/anger/c"].label == "angry" and its["train/anger/c"].speaker is None
    w = " | ".join(m.warnings)
    assert "notes.txt" in w and "uncertain" in w and "misc" in w


# ------------------------------------------------------------------------------------------ layout errors

LOADERS = [(emodb.load, emodb.LAYOUT), (crema_d.load, crema_d.LAYOUT), (tess.load, tess.LAYOUT),
           (iemocap.load4, iemocap.LAYOUT), (iemocap.load6, iemocap.LAYOUT), (ckplus.load, ckplus.LAYOUT),
           (affectnet.load, affectnet.LAYOUT)]


@pytest.mark.parametrize("load,layout", LOADERS)
def test_missing_root(tmp_path, load, layout):
    root = tmp_path / "nowhere"
    with pytest.raises(InputError) as e:
        load(root)
    assert str(root) in str(e.value) and layout in str(e.value)


@pytest.mark.parametrize("load,layout", LOADERS)
def test_wrong_layout(tmp_path, load, layout):
    # a RAVDESS-shaped folder is no layout of these corpora
    root = tmp_path / "other"
    touch(root / "Actor_01" / "03-01-05-01-02-01-01.wav")
    touch(root / "readme.txt")
    with pytest.raises(InputError) as e:
        load(root)
    assert str(root) in str(e.value) and layout in str(e.value)


@pytest.mark.parametrize("load,layout", LOADERS)
def test_empty_or_partial_root(tmp_path, load, layout):
    root = tmp_path / "partial"
    for d in ("wav", "AudioWAV", "Session1/dialog/EmoEvaluation", "cohn-kanade-images", "Emotion", "train/happy",
              "OAF_angry"):
        (root / d).mkdir(parents=True)
    with pytest.raises(InputError) as e:
        load(root)
    assert str(root) in str(e.value) and layout in str(e.value)


def test_manifest_jsonl_round_trip(tmp_path):
    ms = (emodb.load(make_emodb(tmp_path)), iemocap.load(make_iemocap(tmp_path)), ckplus.load(make_ckplus(tmp_path)))
    for m in ms:
        assert list(Manifest.from_jsonl(m.to_jsonl(tmp_path / "m.jsonl"))) == list(m)
