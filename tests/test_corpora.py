"""Corpus loaders (emofuse.corpora): tiny fixtures written here in each corpus's own layout, label-map
coverage, layout errors, JSONL round trip, and counts on the real corpora (skipped when absent)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from emofuse import taxonomy
from emofuse.corpora import CORPORA, Item, Manifest, emobox_folds, prepare
from emofuse.corpora import emobank, fer2013, goemotions, meld, mosi_sims, nemo, ravdess, savee, turevdb
from emofuse.errors import InputError

CANON = set(taxonomy.EMOTIONS) | {None}


# ------------------------------------------------------------------------------------------ fixture builders

def touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def write_csv(p: Path, header: list[str], rows: list[list]) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return p


def write_emobox(folds: Path, corpus: str, parts: dict[int, tuple[list[str], list[str]]], ext: str = ".wav") -> None:
    """EmoBox fold jsonl files whose `wav` paths point at the EmoBox download layout (not local files)."""
    for k, (train, test) in parts.items():
        for part, names in (("train", train), ("test", test)):
            p = folds / f"fold_{k}" / f"{corpus}_{part}_fold_{k}.jsonl"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("".join(json.dumps({"key": f"{corpus}-{n}", "wav": f"downloads/{corpus}/audio/{n}{ext}",
                                             "emo": "x"}) + "\n" for n in names))


RAV = ["03-01-02-01-01-01-01", "03-01-05-02-02-01-01", "03-01-08-01-01-02-02"]


def make_ravdess(tmp: Path, folds: bool = True) -> Path:
    root = tmp / "speech" / "ravdess"
    for n in RAV:
        touch(root / f"Actor_{n[-2:]}" / f"{n}.flac")
    touch(root / "Actor_01" / "03-02-03-01-01-01-01.flac")  # song: reported, not loaded
    touch(root / "Actor_02" / "notes.txt")  # junk: reported
    if folds:
        write_emobox(tmp / "speech" / "ravdess_folds", "ravdess", {1: (RAV[2:], RAV[:2]), 2: (RAV[:2], RAV[2:])})
    return root


# ------------------------------------------------------------------------------------------ manifest

def test_item_validates_and_jsonl_round_trip(tmp_path):
    with pytest.raises(ValueError):
        Item(id="x", corpus="c", label="calm")
    with pytest.raises(ValueError):
        Item(id="x", corpus="c", valence=1.5)
    with pytest.raises(ValueError):
        Item(id="x", corpus="c", split="validation")
    items = [
        Item(id="a", corpus="c", paths=(tmp_path / "a.flac",), text="hé", speaker="s1", split="train", fold=2,
             label="happy", original_label="joy", valence=0.25, arousal=-1.0, extra={"k": [1, 2], "d": {"x": 0.1}}),
        Item(id="b", corpus="c"),
    ]
    m = Manifest(items, ["c: 1 entry skipped: bad (e.g. z)"])
    m2 = Manifest.from_jsonl(m.to_jsonl(tmp_path / "m.jsonl"))
    assert list(m2) == list(m) and m2.warnings == m.warnings
    assert isinstance(m2[0].paths[0], Path)
    assert hash(m2[0]) == hash(m[0])
    assert m.labels() == ["happy", None]
    assert m.label_counts() == {"happy": 1, None: 1}
    assert m.filter(split="train").ids() == ["a"]
    assert m.filter(label=("happy", "sad"), predicate=lambda it: it.fold == 2).ids() == ["a"]
    assert m.filter(split="train").warnings == m.warnings
    assert m.speakers() == ["s1"]
    with pytest.raises(TypeError):
        m.filter(colour="red")
    (tmp_path / "bad.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(InputError):
        Manifest.from_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(InputError):
        Manifest.from_jsonl(tmp_path / "missing.jsonl")


def test_real_manifest_round_trip(tmp_path):
    m = ravdess.load(make_ravdess(tmp_path))
    assert list(Manifest.from_jsonl(m.to_jsonl(tmp_path / "r.jsonl"))) == list(m)


# ------------------------------------------------------------------------------------------ label maps

@pytest.mark.parametrize("mod,originals", [
    (ravdess, set(ravdess.CODES.values())),
    (savee, set(savee.CODES.values())),
    (fer2013, set(fer2013.CSV_CLASSES)),
    (meld, {"anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"}),
    (goemotions, {"anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"}),
])
def test_label_map_covers_the_corpus_labels(mod, originals):
    assert set(mod.LABEL_MAP) == originals
    assert set(mod.LABEL_MAP.values()) <= CANON
    # nothing is dropped in these corpora: every canonical class is reachable
    assert set(mod.LABEL_MAP.values()) == set(taxonomy.EMOTIONS)


def test_nemo_and_turevdb_label_maps():
    # nEMO: six emotions, no disgust; TurEV-DB: four folders, Calm -> neutral as RAVDESS calm
    assert set(nemo.LABEL_MAP) == {"anger", "fear", "happiness", "neutral", "sadness", "surprised"}
    assert set(nemo.LABEL_MAP.values()) == set(taxonomy.EMOTIONS) - {"disgusted"}
    assert turevdb.LABEL_MAP == {"Angry": "angry", "Calm": "neutral", "Happy": "happy", "Sad": "sad"}
    assert turevdb.LABEL_MAP["Calm"] == ravdess.LABEL_MAP["calm"]


def test_label_maps_agree_with_taxonomy():
    assert ravdess.LABEL_MAP["calm"] == "neutral"  # the calm -> neutral rule
    assert set(ravdess.CODES) == set(taxonomy.RAVDESS)
    assert all(ravdess.LABEL_MAP[ravdess.CODES[c]] == taxonomy.RAVDESS[c] for c in ravdess.CODES)
    assert set(savee.CODES) == set(taxonomy.SAVEE)
    assert all(savee.LABEL_MAP[savee.CODES[c]] == taxonomy.SAVEE[c] for c in savee.CODES)
    assert fer2013.LABEL_MAP == taxonomy.FER2013 and meld.LABEL_MAP == taxonomy.MELD
    assert goemotions.LABEL_MAP == taxonomy.GOEMOTIONS_EKMAN
    assert set(fer2013.CSV_CLASSES) == set(fer2013.LABEL_MAP)


# ------------------------------------------------------------------------------------------ RAVDESS / SAVEE

def test_ravdess_fixture(tmp_path):
    make_ravdess(tmp_path)
    m = prepare("ravdess", tmp_path)  # the data folder: found at speech/ravdess
    assert m.ids() == RAV
    by = {it.id: it for it in m}
    a = by["03-01-02-01-01-01-01"]
    assert (a.speaker, a.label, a.original_label, a.fold, a.split) == ("ravdess-01", "neutral", "calm", 1, None)
    assert a.text == "Kids are talking by the door" and a.paths[0].name == "03-01-02-01-01-01-01.flac"
    assert a.extra["gender"] == "male" and a.extra["intensity"] == "normal"
    b = by["03-01-05-02-02-01-01"]
    assert (b.label, b.original_label, b.extra["intensity"], b.text) == ("angry", "angry", "strong",
                                                                       "Dogs are sitting by the door")
    c = by["03-01-08-01-01-02-02"]
    assert (c.speaker, c.label, c.fold, c.extra["gender"]) == ("ravdess-02", "surprised", 2, "female")
    assert m.speakers() == ["ravdess-01", "ravdess-02"]
    assert len(m.warnings) == 2 and all("1 entry" in w for w in m.warnings)
    assert any("speech" in w and "03-02-03" in w for w in m.warnings)


def test_ravdess_without_folds_and_wav(tmp_path):
    root = tmp_path / "rav"
    touch(root / "Actor_03" / "03-01-04-01-01-01-03.wav")
    m = ravdess.load(root)
    assert [(it.id, it.label, it.fold, it.speaker) for it in m] == [("03-01-04-01-01-01-03", "sad", None, "ravdess-03")]
    assert m.warnings == []


def test_emobox_folds_match_on_file_name(tmp_path):
    make_ravdess(tmp_path)
    folds = emobox_folds(tmp_path / "speech" / "ravdess_folds")
    assert folds == {1: (set(RAV[2:]), set(RAV[:2])), 2: (set(RAV[:2]), set(RAV[2:]))}
    assert ravdess.emobox_folds is emobox_folds and savee.emobox_folds is emobox_folds
    with pytest.raises(InputError, match="fold_N"):
        emobox_folds(tmp_path / "speech" / "ravdess")


def test_folds_report_unmatched_entries(tmp_path):
    root = make_ravdess(tmp_path, folds=False)
    write_emobox(tmp_path / "f", "ravdess", {1: ([RAV[0]], [RAV[1], "03-01-01-01-01-01-09"])})
    m = ravdess.load(root, folds_dir=tmp_path / "f")
    assert [it.fold for it in m] == [None, 1, None]
    text = " | ".join(m.warnings)
    assert "03-01-01-01-01-01-09" in text and "not found locally" in text
    assert "2 entries in no EmoBox test fold" in text


def test_savee_flat_layout_with_folds(tmp_path):
    root = tmp_path / "speech" / "savee"
    names = ["DC_a01", "DC_sa02", "JE_n23", "KL_su15"]
    for n in names:
        touch(root / f"{n}.flac")
    touch(root / "DC_xx01.flac")  # unknown code
    write_emobox(tmp_path / "speech" / "savee_folds", "savee",
                 {1: (names[2:], names[:2]), 2: (names[:2], names[2:])})
    m = prepare("savee", tmp_path)
    assert m.ids() == names
    assert [it.speaker for it in m] == ["savee-DC", "savee-DC", "savee-JE", "savee-KL"]
    assert m.labels() == ["angry", "sad", "neutral", "surprised"]
    assert [it.original_label for it in m] == ["anger", "sadness", "neutral", "surprise"]
    assert [it.fold for it in m] == [1, 1, 2, 2]
    assert len(m.warnings) == 1 and "DC_xx01" in m.warnings[0]


def test_savee_original_nested_layout(tmp_path):
    root = tmp_path / "AudioData"
    touch(root / "JK" / "h03.wav")
    touch(root / "JK" / "f12.wav")
    m = savee.load(root)
    assert [(it.id, it.speaker, it.label) for it in m] == [("JK_f12", "savee-JK", "fearful"), ("JK_h03", "savee-JK", "happy")]


def test_nemo_fixture_with_transcripts(tmp_path):
    root = tmp_path / "speech" / "nemo"
    for n in ("EB0_anger_1", "EB0_neutral_2", "WR0_surprised_64", "KS0_fear_3"):
        touch(root / f"{n}.opus")
    touch(root / "EB0_disgust_4.opus")  # not a nEMO emotion: reported
    touch(root / "readme.opus")  # not a clip name: reported
    touch(root / "LICENSE")  # not audio: ignored
    (root / "data.tsv").write_text(
        "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
        "EB0_anger_1.wav\tanger\tLubię czytać przed snem.\tlubię czytać przed snem\t   EB0\tfemale\t27\n"
        "EB0_neutral_2.wav\tneutral\tTo jest dom.\tto jest dom\tEB0\tfemale\t27\n"
        "WR0_surprised_64.wav\tanger\tUcho.\tucho\tWR0\tmale\t23\n"  # disagrees with its name: skipped
        "XX0_anger_9.wav\tanger\tNic.\tnic\tXX0\tmale\t30\n", encoding="utf-8")  # no audio: reported
    m = prepare("nemo", tmp_path)
    assert m.ids() == ["EB0_anger_1", "EB0_neutral_2", "KS0_fear_3"]
    assert m.labels() == ["angry", "neutral", "fearful"] and m.speakers() == ["nemo-EB0", "nemo-KS0"]
    assert m[0].text == "Lubię czytać przed snem." and m[0].extra == {"gender": "female", "age": 27}
    assert m[2].text is None  # not in data.tsv: kept without text, counted
    text = " | ".join(m.warnings)
    for what in ("EB0_disgust_4", "readme", "KS0_fear_3", "WR0_surprised_64", "XX0_anger_9"):
        assert what in text, (what, m.warnings)
    assert len(m.warnings) == 5


def test_nemo_and_turevdb_in_another_layout_are_named(tmp_path):
    touch(tmp_path / "nemo" / "clip1.wav")
    with pytest.raises(InputError, match="nEMO .*EB0_anger_1"):
        nemo.load(tmp_path / "nemo")
    touch(tmp_path / "tur" / "1984_sk_orgu.opus")  # the clips without their emotion folders
    with pytest.raises(InputError, match="TurEV-DB .*Angry"):
        turevdb.load(tmp_path / "tur")
    (tmp_path / "tur2" / "Angry").mkdir(parents=True)
    with pytest.raises(InputError, match="no audio files"):
        turevdb.load(tmp_path / "tur2")
    with pytest.raises(InputError, match="does not exist"):
        prepare("turevdb", tmp_path / "absent")


def test_turevdb_fixture(tmp_path):
    root = tmp_path / "speech" / "turevdb"
    for emo, n in (("Angry", "1157_kz_acik"), ("Calm", "1157_kz_acik"), ("Happy", "1984_sk_orgu"), ("Sad", "7895_hl_su")):
        touch(root / emo / f"{n}.opus")
    touch(root / "Surprised" / "1157_kz_acik.opus")  # not a TurEV-DB folder: reported
    touch(root / "Sad" / "notes.txt")  # reported
    m = prepare("turevdb", tmp_path)
    assert m.ids() == ["Angry/1157_kz_acik", "Calm/1157_kz_acik", "Happy/1984_sk_orgu", "Sad/7895_hl_su"]
    assert m.labels() == ["angry", "neutral", "happy", "sad"]
    assert [it.original_label for it in m] == ["Angry", "Calm", "Happy", "Sad"]
    assert m.speakers() == ["turevdb-1157", "turevdb-1984", "turevdb-7895"] and m[0].text == "acik"
    assert len(m.warnings) == 2 and "Surprised" in " ".join(m.warnings) and "notes.txt" in " ".join(m.warnings)


# ------------------------------------------------------------------------------------------ FER2013

def test_fer2013_folders(tmp_path):
    root = tmp_path / "faces" / "fer2013"
    touch(root / "train" / "angry" / "Training_1.jpg")
    touch(root / "train" / "surprise" / "Training_2.jpg")
    touch(root / "validation" / "disgust" / "PublicTest_3.jpg")
    touch(root / "validation" / "contempt" / "x.jpg")  # not a FER2013 class: reported
    touch(root / "train" / "angry" / "Thumbs.db")  # reported
    m = prepare("fer2013", tmp_path)
    assert m.ids() == ["train/angry/Training_1", "train/surprise/Training_2", "validation/disgust/PublicTest_3"]
    assert [it.split for it in m] == ["train", "train", "val"]
    assert m.labels() == ["angry", "surprised", "disgusted"]
    assert [it.speaker for it in m] == [None] * 3
    assert len(m.warnings) == 2


def test_fer2013_csv(tmp_path):
    px = " ".join(str(i % 256) for i in range(48 * 48))
    f = write_csv(tmp_path / "fer" / "fer2013.csv", ["emotion", "pixels", "Usage"],
                  [[0, px, "Training"], [6, px, "PublicTest"], [5, px, "PrivateTest"], [3, "1 2 3", "Training"]])
    m = fer2013.load(f.parent)
    assert m.ids() == ["fer2013-0", "fer2013-1", "fer2013-2"]
    assert [it.split for it in m] == ["train", "val", "test"]
    assert m.labels() == ["angry", "neutral", "surprised"]
    assert [it.original_label for it in m] == ["angry", "neutral", "surprise"]
    assert all(it.paths == () for it in m) and m[1].extra["usage"] == "PublicTest"
    img = fer2013.pixels(m[0])
    assert img.shape == (48, 48) and int(img[0, 5]) == 5
    assert len(m.warnings) == 1 and "1 entry" in m.warnings[0] and "row 3" in m.warnings[0]
    assert fer2013.load(f).ids() == m.ids()  # the csv itself as root


# ------------------------------------------------------------------------------------------ text corpora

MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
               "Season", "Episode", "StartTime", "EndTime"]


def make_meld(tmp: Path) -> Path:
    root = tmp / "text" / "meld"
    write_csv(root / "train_sent_emo.csv", MELD_HEADER, [
        [1, "Oh my God!", "Rachel", "surprise", "positive", 0, 0, 8, 21, "00:16:16,059", "00:16:21,731"],
        [2, "I hate this.", "Ross", "anger", "negative", 0, 1, 8, 21, "00:16:21,940", "00:16:23,442"],
        [3, "Yay!", "Phoebe", "joy", "positive", 1, 0, 3, 4, "00:01:00,000", "00:01:01,000"],
    ])
    write_csv(root / "dev_sent_emo.csv", MELD_HEADER, [
        [1, "Okay.", "Joey", "neutral", "neutral", 0, 0, 1, 1, "00:00:01,000", "00:00:02,000"],
    ])
    return root


def test_meld_fixture(tmp_path):
    make_meld(tmp_path)
    m = prepare("meld", tmp_path)
    assert m.ids() == ["train/dia0_utt0", "train/dia0_utt1", "train/dia1_utt0", "dev/dia0_utt0"]
    assert m.labels() == ["surprised", "angry", "happy", "neutral"]
    assert [it.speaker for it in m] == ["Rachel", "Ross", "Phoebe", "Joey"]
    assert [it.split for it in m] == ["train", "train", "train", "dev"]
    assert m[0].text == "Oh my God!" and m[0].extra["sentiment"] == "positive" and m[0].extra["season"] == 8
    assert all(it.paths == () for it in m) and m.warnings == []


def test_meld_clips_dir(tmp_path):
    root = make_meld(tmp_path)
    clips = tmp_path / "MELD.Raw"
    touch(clips / "train" / "train_splits" / "dia0_utt0.mp4")
    touch(clips / "dev" / "dev_splits_complete" / "dia0_utt0.mp4")
    touch(clips / "dia0_utt1.mp4")
    m = meld.load(root, clips_dir=clips)
    assert [len(it.paths) for it in m] == [1, 1, 0, 1]
    assert m[0].paths[0] == clips / "train" / "train_splits" / "dia0_utt0.mp4"
    assert m[3].paths[0].parent.name == "dev_splits_complete"
    assert len(m.warnings) == 1 and "dia1_utt0.mp4" in m.warnings[0]


def test_meld_unknown_emotion_is_reported(tmp_path):
    root = tmp_path / "meld"
    write_csv(root / "train_sent_emo.csv", MELD_HEADER,
              [[1, "Hm.", "Monica", "contempt", "negative", 0, 0, 1, 1, "", ""],
               [2, "Ok.", "Monica", "neutral", "neutral", 0, 1, 1, 1, "", ""]])
    m = meld.load(root)
    assert m.ids() == ["train/dia0_utt1"]
    assert len(m.warnings) == 1 and "1 entry" in m.warnings[0] and "row 1" in m.warnings[0]


def make_goemotions(tmp: Path) -> Path:
    root = tmp / "text" / "goemotions"
    root.mkdir(parents=True)
    (root / "ekman_labels.txt").write_text("anger\ndisgust\nfear\njoy\nneutral\nsadness\nsurprise\n")
    (root / "labels.txt").write_text("admiration\namusement\nanger\nsurprise\nneutral\n")
    (root / "ekman_train.tsv").write_text("I love it\t3\tc1\nWhat?! wow\t3,6\tc2\nmeh\t4\tc3\nbroken line\n")
    (root / "train.tsv").write_text("I love it\t0,1\tc1\nWhat?! wow\t1,3\tc2\nmeh\t4\tc3\n")
    (root / "ekman_dev.tsv").write_text("grr\t0\td1\n")
    return root


def test_goemotions_multilabel_rule(tmp_path):
    make_goemotions(tmp_path)
    m = prepare("goemotions", tmp_path)
    assert m.ids() == ["c1", "c2", "c3", "d1"]
    assert m.labels() == ["happy", None, "neutral", "angry"]  # multi-label: label None, kept
    c2 = m[1]
    assert c2.original_label == "joy+surprise" and c2.extra["labels"] == ["joy", "surprise"]
    assert c2.extra["fine_labels"] == ["amusement", "surprise"]
    assert m[0].extra["fine_labels"] == ["admiration", "amusement"] and "fine_labels" not in m[3].extra
    assert [it.split for it in m] == ["train", "train", "train", "dev"]
    assert len(m.warnings) == 1 and "line 4" in m.warnings[0]


def test_emobank_rescaling(tmp_path):
    root = tmp_path / "text" / "emobank"
    write_csv(root / "emobank.csv", ["id", "split", "V", "A", "D", "text"],
              [["s1", "train", 3.0, 3.0, 3.2, " Hello. "], ["s2", "dev", 5.0, 1.0, 2.0, "Great"],
               ["s3", "test", 4.0, 2.5, 3.0, "x"], ["s4", "train", 6.0, 3.0, 3.0, "out of range"]])
    m = prepare("emobank", tmp_path)
    assert m.ids() == ["s1", "s2", "s3"]
    assert [(it.valence, it.arousal) for it in m] == [(0.0, 0.0), (1.0, -1.0), (0.5, -0.25)]
    assert m[0].text == "Hello." and m[0].label is None and m[0].extra["dominance"] == pytest.approx(0.1)
    assert [it.split for it in m] == ["train", "dev", "test"]
    assert len(m.warnings) == 1 and "s4" in m.warnings[0]
    assert (emobank.rescale(1.0), emobank.rescale(5.0)) == (-1.0, 1.0)


def test_mosi_and_sims(tmp_path):
    cols = ["name", "split", "sentiment", "chinese", "english"]
    write_csv(tmp_path / "text" / "mosi" / "mosi.csv", cols,
              [["03bSnISJMiM_1", "train", "2.4000", "真的很好", "ANYHOW IT WAS REALLY GOOD"],
               ["03bSnISJMiM_10", "valid", "-3.0", "悲伤", "THERE IS SAD PART"],
               ["zz_1", "test", "nan?", "", ""]])
    write_csv(tmp_path / "text" / "sims" / "sims.csv", cols,
              [["video_0001_0001", "train", "-1.0000", "我不想嫁给李茶", "I don't want to marry Li cha"],
               ["video_0002_0003", "val", "0.4", "好", "Good"]])
    mo = prepare("mosi", tmp_path)
    assert mo.ids() == ["03bSnISJMiM_1", "03bSnISJMiM_10"]
    assert [it.valence for it in mo] == [pytest.approx(0.8), -1.0]
    assert [it.split for it in mo] == ["train", "val"]
    assert mo[0].text == "ANYHOW IT WAS REALLY GOOD" and mo[0].extra["video"] == "03bSnISJMiM"
    assert len(mo.warnings) == 1 and "zz_1" in mo.warnings[0]
    si = prepare("sims", tmp_path)
    assert [(it.id, it.valence, it.text, it.extra["video"]) for it in si] == [
        ("video_0001_0001", -1.0, "我不想嫁给李茶", "video_0001"), ("video_0002_0003", 0.4, "好", "video_0002")]
    assert all(it.corpus == "sims" and it.arousal is None for it in si)


# ------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("name", sorted(CORPORA))
def test_missing_root_names_path_and_layout(tmp_path, name):
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError) as e:
        prepare(name, missing)
    assert str(missing) in str(e.value) and "expected" in str(e.value)
    with pytest.raises(InputError) as e:
        CORPORA[name].load(missing)
    assert str(missing) in str(e.value) and "expected" in str(e.value)


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_empty_root_is_an_error(tmp_path, name):
    with pytest.raises(InputError) as e:
        prepare(name, tmp_path)
    assert str(tmp_path) in str(e.value) and "expected " in str(e.value)


def test_wrong_layouts(tmp_path):
    # a SAVEE folder given as RAVDESS
    sv = tmp_path / "savee"
    touch(sv / "DC_a01.wav")
    with pytest.raises(InputError, match=r"has no Actor_XX folders; expected <root>/Actor_01/03-01-"):
        prepare("ravdess", sv)
    # Actor folders holding something else (partial / other layout)
    touch(tmp_path / "rav" / "Actor_01" / "a01.wav")
    with pytest.raises(InputError, match="no speech clips"):
        ravdess.load(tmp_path / "rav")
    # RAVDESS given as SAVEE
    with pytest.raises(InputError, match="no SAVEE audio files"):
        savee.load(tmp_path / "rav")
    # FER2013 split folder without class folders
    touch(tmp_path / "fer" / "train" / "img.jpg")
    with pytest.raises(InputError, match="no images"):
        fer2013.load(tmp_path / "fer")
    # MELD csv with other columns
    write_csv(tmp_path / "meld" / "train_sent_emo.csv", ["text", "label"], [["hi", "joy"]])
    with pytest.raises(InputError, match="missing"):
        meld.load(tmp_path / "meld")
    # GoEmotions 28-label files without the Ekman ones (partial)
    (tmp_path / "go").mkdir()
    (tmp_path / "go" / "train.tsv").write_text("x\t1\tid\n")
    with pytest.raises(InputError, match="ekman_labels.txt"):
        goemotions.load(tmp_path / "go")
    # MOSI csv given as SIMS
    write_csv(tmp_path / "s" / "sims.csv", ["name", "label"], [["a", "1"]])
    with pytest.raises(InputError, match="sentiment"):
        mosi_sims.load_sims(tmp_path / "s")
    with pytest.raises(InputError, match="unknown corpus"):
        prepare("iemocap", tmp_path)


def test_registry_is_consistent():
    assert {"ravdess", "savee", "fer2013", "meld", "goemotions", "emobank", "mosi", "sims", "emodb", "crema_d",
            "tess", "iemocap4", "iemocap6", "ckplus", "affectnet", "afew", "isear", "mosei", "sims2",
            "ravdess_av", "mmsa_sims"} <= set(CORPORA)
    assert all(name == c.name and c.layout for name, c in CORPORA.items())


# ------------------------------------------------------------------------------------------ real corpora

def _splits(m: Manifest) -> dict:
    out: dict = {}
    for it in m:
        out[it.split] = out.get(it.split, 0) + 1
    return out


def test_data_ravdess(data_root):
    m = prepare("ravdess", data_root)
    assert len(m) == 1440 and len(m.speakers()) == 24 and m.warnings == []
    assert len(set(m.ids())) == 1440
    assert m.label_counts()["neutral"] == 288  # 96 neutral + 192 calm
    assert sum(it.original_label == "calm" for it in m) == 192
    folds = emobox_folds(data_root / "speech" / "ravdess_folds")
    assert sorted(folds) == [1, 2, 3, 4, 5, 6]
    spk = {it.id: it.speaker for it in m}
    tested = set()
    for k, (train, test) in folds.items():
        assert (train | test) <= set(spk)
        tr, te = {spk[i] for i in train}, {spk[i] for i in test}
        assert not tr & te, f"fold {k} has a speaker on both sides"
        tested |= te
    assert len(tested) == 24
    assert {it.fold for it in m} == set(range(1, 7))


def test_data_savee(data_root):
    m = prepare("savee", data_root)
    assert len(m) == 480 and m.speakers() == ["savee-DC", "savee-JE", "savee-JK", "savee-KL"] and m.warnings == []
    assert {it.fold for it in m} == {1, 2, 3, 4}
    for k in range(1, 5):
        assert len({it.speaker for it in m.filter(fold=k)}) == 1


def test_data_nemo_and_turevdb(data_root):
    m = prepare("nemo", data_root)
    assert len(m) == 4481 and len(m.speakers()) == 9 and m.warnings == []
    assert "disgusted" not in m.label_counts() and all(it.text for it in m)
    t = prepare("turevdb", data_root)
    assert len(t) == 1735 and len(t.speakers()) == 6 and t.warnings == [] and len(set(t.ids())) == 1735
    assert t.label_counts() == {"neutral": 408, "happy": 357, "sad": 483, "angry": 487}


def test_data_fer2013(data_root):
    m = prepare("fer2013", data_root)
    assert _splits(m) == {"train": 28709, "val": 3589} and m.warnings == []
    assert None not in m.label_counts()


def test_data_text_corpora(data_root):
    meld_m = prepare("meld", data_root)
    assert _splits(meld_m) == {"train": 9989, "dev": 1109} and meld_m.warnings == []
    assert len(set(meld_m.ids())) == len(meld_m)
    go = prepare("goemotions", data_root)
    assert _splits(go) == {"train": 43410, "dev": 5426} and go.warnings == []
    assert all((it.label is None) == (len(it.extra["labels"]) > 1) for it in go)
    eb = prepare("emobank", data_root)
    assert _splits(eb) == {"train": 8062, "dev": 1000} and eb.warnings == []
    mo = prepare("mosi", data_root)
    assert _splits(mo) == {"train": 1284, "val": 229} and mo.warnings == []
    si = prepare("sims", data_root)
    assert _splits(si) == {"train": 1368, "val": 456} and si.warnings == []
    assert all(-1 <= it.valence <= 1 for it in (*eb, *mo, *si))
