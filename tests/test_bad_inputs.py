"""Every bad input and every bad option gets a clean answer, and nothing else is lost.

The corpus (tests/badinputs.py) runs through the command line in one batch and through the Python API:
one answer per input, in order; an InputError naming the file, the cause and the fix, or a result whose
notes say what was odd; never a traceback; bounded time and memory. Bad options exit 2 before any model
loads. A batch of 100 inputs with 10 broken ones yields 90 results and 10 errors in every output format.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from badinputs import Case, cases
from badmedia import write_wav
from conftest import MEDIA

pytestmark = pytest.mark.slow

# Peak memory of the CLI child, reported from inside it: VmHWM, the peak of its own address space (ru_maxrss
# would include the pytest parent's size at fork, which Linux carries across exec).
_RUN = ("import atexit, sys\n"
        "def _hwm():\n"
        "    kb = next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
        "    sys.stderr.write('MAXRSS_KB %d\\n' % kb)\n"
        "atexit.register(_hwm)\n"
        "from emofuse.cli import main\n"
        "sys.argv = ['emofuse', *sys.argv[1:]]\n"
        "main()\n")
MAX_RSS_MB = 2000  # the analysis of the whole corpus stays far below this (about 0.8 GB measured)


def _cli(*args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess[str], float, int]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, timeout=timeout)
    rss = next((int(x.split()[1]) // 1024 for x in r.stderr.splitlines() if x.startswith("MAXRSS_KB")), -1)
    return r, time.perf_counter() - t, rss


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Case, Path]]:
    tmp = tmp_path_factory.mktemp("bad")
    have_media = (MEDIA / "single_face.jpg").exists() and (MEDIA / "demo.mp4").exists()
    return [(c, c.make(tmp)) for c in cases() if have_media or not c.needs_media]


def _check(case: Case, path: Path, doc: dict) -> None:
    if case.expect == "error":
        assert "error" in doc, f"{case.name}: expected an error, got a result with notes {doc['summary']['notes']}"
        assert doc["error_type"] == "InputError", f"{case.name}: {doc}"
        assert path.name in doc["error"], f"{case.name}: the message does not name the file: {doc['error']}"
        for s in case.says:
            assert s in doc["error"], f"{case.name}: {s!r} not in {doc['error']!r}"
    else:
        assert "error" not in doc, f"{case.name}: expected a result, got {doc.get('error')}"
        notes = " | ".join(doc["summary"]["notes"])
        for s in case.says:
            assert s in notes, f"{case.name}: no note says {s!r}: {notes!r}"
        for seg in doc["segments"]:
            for d in [*seg["modalities"].values(), *([seg["fused"]] if "fused" in seg else [])]:
                assert abs(sum(d["probs"].values()) - 1) < 1e-9  # rounded, still a distribution


def test_every_bad_input_gets_one_clean_answer_from_the_cli(corpus: list[tuple[Case, Path]]) -> None:
    media = [(c, p) for c, p in corpus if c.kind == "media"]
    texts = [(c, p) for c, p in corpus if c.kind == "textfile"]
    args = ["analyze", "--format", "json"] + [a for _, p in texts for a in ("--text-file", str(p))]
    r, secs, rss = _cli(*args, "--", *(str(p) for _, p in media))  # `--`: a file name may start with a dash
    assert r.returncode == 1, r.stderr[-2000:]  # some inputs failed, each on its own
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[-3000:]
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    order = media + texts  # the CLI analyses media inputs, then --text, then --text-file
    assert [d["input"] for d in docs] == [str(p) for _, p in order]
    for (c, p), d in zip(order, docs):
        _check(c, p, d)
    n_err = sum(c.expect == "error" for c, _ in order)
    assert f"{n_err} of {len(order)} inputs failed" in r.stderr
    assert 0 < rss < MAX_RSS_MB, rss
    assert secs < 600, secs


def test_the_same_corpus_through_the_python_api(corpus: list[tuple[Case, Path]]) -> None:
    from emofuse import Analyzer, AnalyzerOptions
    from emofuse.errors import EmofuseError
    from emofuse.media import read_text_file
    from emofuse.result import AnalysisError

    a = Analyzer(AnalyzerOptions())
    try:
        media = [(c, p) for c, p in corpus if c.kind == "media"]
        out = a.analyze_many([p for _, p in media])
        assert len(out) == len(media)
        for (c, p), r in zip(media, out):
            _check(c, p, r.to_dict())
            if isinstance(r, AnalysisError):
                assert r.error_type == "InputError"
        for c, p in ((c, p) for c, p in corpus if c.kind == "textfile"):
            try:
                doc = a.analyze_text(read_text_file(p), name=str(p)).to_dict()
            except EmofuseError as e:
                doc = {"input": str(p), "error": str(e), "error_type": type(e).__name__}
            _check(c, p, doc)
    finally:
        a.close()


def _garbage_model(tmp: Path) -> Path:
    d = tmp / "garbage_model"
    d.mkdir()
    (d / "model.bin").write_bytes(np.random.default_rng(1).bytes(4096))
    (d / "config.json").write_text("{}")
    return d


def _crafted_checkpoint(tmp: Path) -> Path:
    """A real, tiny fusion checkpoint whose metadata then claims a huge hidden size."""
    pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from emofuse import checkpoints as ck
    from emofuse.networks import FusionConfig, build

    net = build("concat", FusionConfig(dims={"voice": 1024}, n_classes=2, hidden=4))
    p = ck.save_network(tmp / "crafted.safetensors", net, "concat",
                        {"features": {"voice": ck.FeatureSpec.of_extractor("voice-whisper-base", 1024).to_dict()},
                         "labels": ["happy", "sad"]})
    with safe_open(str(p), framework="numpy") as f:
        meta = json.loads(f.metadata()["emofuse"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["config"]["hidden"] = 60000
    save_file(tensors, str(p), metadata={"emofuse": json.dumps(meta)})
    return p


OPTIONS = [
    (["--beam-size", "0"], "beam_size must be an integer >= 1"),
    (["--language", "xx"], "language 'xx' is not one Whisper knows"),
    (["--asr-model", "whisper-tiny.en", "--language", "de"], "is English-only"),
    (["--modalities", "smell"], "unknown modalities"),
    (["--fps", "0"], "fps must be a positive number"),
    (["--max-duration", "-1"], "max_duration must be a positive number"),
    (["--asr-model", "{tmp}/no_such_model"], "CTranslate2 Whisper directory"),
    (["--asr-model", "{garbage}"], "not a CTranslate2 Whisper model"),
    (["--fusion", "nonsense"], "unknown fusion 'nonsense'"),
    (["--fusion", "gated"], "--checkpoint"),
    (["--checkpoint", "{tmp}/none.safetensors"], "does not exist"),
    (["--checkpoint", "{crafted}"], "do not match a 'concat' network"),
    (["-o", "{tmp}"], "cannot write the output file"),
]


@pytest.mark.parametrize("args, says", OPTIONS, ids=[" ".join(a) for a, _ in OPTIONS])
def test_bad_options_exit_2_with_one_line_before_loading(tmp_path: Path, args: list[str], says: str) -> None:
    fill = {"tmp": str(tmp_path)}
    if any("{garbage}" in a for a in args):
        fill["garbage"] = str(_garbage_model(tmp_path))
    if any("{crafted}" in a for a in args):
        fill["crafted"] = str(_crafted_checkpoint(tmp_path))
    r, secs, rss = _cli("analyze", "--text", "hello there", *(a.format(**fill) for a in args), timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    lines = [x for x in r.stderr.splitlines() if not x.startswith("MAXRSS_KB")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert r.stdout == "" and rss < 1200  # refused before the models were loaded (a loaded analyzer is ~0.7 GB)


def test_nothing_to_analyse_and_full_disk() -> None:
    r, _, _ = _cli("analyze")
    assert r.returncode == 2 and "nothing to analyse" in r.stderr
    if Path("/dev/full").exists():
        r, _, _ = _cli("analyze", "--text", "so happy", "--modalities", "text", "--format", "csv", "-o", "/dev/full")
        assert r.returncode == 2 and "No space left" in r.stderr and "Traceback" not in r.stderr


def test_plot_failures_cost_their_input_only(tmp_path: Path) -> None:
    blocked = tmp_path / "file_not_folder"
    blocked.write_text("x")
    r, _, _ = _cli("analyze", "--text", "so happy", "--text", "so sad", "--modalities", "text", "--format", "json",
                   "--plot", str(blocked / "t.png"))
    assert r.returncode == 1 and len(r.stdout.splitlines()) == 2  # both results written
    assert r.stderr.count("cannot write the timeline") == 2 and "Traceback" not in r.stderr
    r, _, _ = _cli("analyze", "--text", "so happy", "--modalities", "text", "--plot", str(tmp_path / "tl"))
    assert r.returncode == 0 and f"timeline: {tmp_path / 'tl.png'}" in r.stderr and (tmp_path / "tl.png").is_file()


def test_an_input_without_segments_says_why_it_has_no_timeline(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "quiet.wav", np.zeros(16000, np.float32))
    r, _, _ = _cli("analyze", str(wav), "--modalities", "voice", "--plot", str(tmp_path / "t.png"), "--format", "json")
    assert r.returncode == 0 and "no timeline for" in r.stderr and "no speech" in r.stderr
    assert not (tmp_path / "t.png").exists()


def test_python_api_refuses_wrong_types_with_its_own_errors(tmp_path: Path) -> None:
    import emofuse
    from emofuse import Analyzer, AnalyzerOptions
    from emofuse.errors import InputError
    from emofuse.result import AnalysisError, AnalysisResult

    with pytest.raises(InputError, match="not bytes"):
        emofuse.analyze(text=b"so happy", modalities=("text",))
    with pytest.raises(InputError, match="file path"):
        emofuse.analyze(5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown option"):
        emofuse.analyze(text="hi", bogus=1)
    with pytest.raises(InputError, match="either a media path or text"):
        emofuse.analyze()
    a = Analyzer(AnalyzerOptions(modalities=("face", "text")))
    try:
        out = a.analyze_many([None, MEDIA / "single_face.jpg", 3.5])  # type: ignore[list-item]
        assert isinstance(out[0], AnalysisError) and out[0].error_type == "InputError" and "file path" in out[0].error
        assert isinstance(out[2], AnalysisError) and out[2].error_type == "InputError"
        if (MEDIA / "single_face.jpg").exists():
            assert isinstance(out[1], AnalysisResult)
            with pytest.raises(TypeError):  # the summary is as read-only as the result
                out[1].summary["label"] = "happy"  # type: ignore[index]
        with pytest.raises(InputError, match="list of str"):
            a.analyze_text([1, 2])  # type: ignore[list-item]
        with pytest.raises(InputError, match="a list of paths"):
            a.analyze_many("clip.mp4")  # type: ignore[arg-type]
    finally:
        a.close()


def test_onnxruntime_writes_no_telemetry(tmp_path: Path) -> None:
    """Loading the text encoder (ONNX Runtime) leaves nothing under HOME/.cache/Microsoft or in TMPDIR."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    cache = Path(os.environ.get("EMOFUSE_CACHE", Path.home() / ".cache" / "emofuse"))
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp), EMOFUSE_CACHE=str(cache))
    env.pop("ORT_DISABLE_TELEMETRY", None)
    code = "import emofuse.features.text as t; t.get_encoder('e5-small'); import onnxruntime; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not (home / ".cache" / "Microsoft").exists() and not list(tmp.iterdir())


BROKEN = ["missing", "empty", "random_bytes_mp4", "unsupported_extension", "faceless_photo", "huge_png_14000",
          "symlink_loop", "png_header_only", "random_bytes_wav", "truncated_index_lost"]


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_a_batch_of_100_with_10_broken_inputs(tmp_path: Path, fmt: str) -> None:
    if not (MEDIA / "single_face.jpg").exists():
        pytest.skip("real media missing")
    by_name = {c.name: c for c in cases()}
    good = []
    for i in range(90):
        if i % 2:
            p = tmp_path / f"good_{i:02d}.jpg"
            shutil.copyfile(MEDIA / "single_face.jpg", p)
        else:
            p = write_wav(tmp_path / f"good_{i:02d}.wav", np.zeros(8000, np.float32))
        good.append(p)
    bad = [by_name[n].make(tmp_path) for n in BROKEN]
    inputs = list(good)
    for k, p in enumerate(bad):  # spread the broken ones through the batch
        inputs.insert(9 * k + 4, p)
    assert len(inputs) == 100
    r, secs, rss = _cli("analyze", "--format", fmt, "--modalities", "voice,face", *map(str, inputs))
    assert r.returncode == 1 and "10 of 100 inputs failed" in r.stderr and "Traceback" not in r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("✗")]
    assert [e.split(": ")[0][2:] for e in errors] == [str(p) for p in bad]  # in order, one line each
    if fmt == "json":
        docs = [json.loads(x) for x in r.stdout.splitlines()]
        assert [d["input"] for d in docs] == list(map(str, inputs))
        assert sum("error" in d for d in docs) == 10 and all(("error" in d) == (Path(d["input"]) in bad) for d in docs)
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        assert [row["input"] for row in rows] == list(map(str, inputs))  # one row each (no segments: one row)
        assert [row["input"] for row in rows if row["label"] == "error"] == list(map(str, bad))
    else:
        pos = [r.stdout.find(p.name) for p in good]  # titles may wrap inside the long temporary path
        assert all(p >= 0 for p in pos) and pos == sorted(pos)  # a table per result, in order
        assert r.stdout.count("(image, 0.0 s)") + r.stdout.count("(audio, 0.5 s)") == 90
    assert rss < MAX_RSS_MB and secs < 600


def test_over_long_media_is_refused_by_its_limit(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "two_seconds.wav", np.zeros(32000, np.float32))
    r, _, _ = _cli("analyze", str(wav), "--max-duration", "1", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and "over the limit of 1 s" in doc["error"] and "--max-duration" in doc["error"]
