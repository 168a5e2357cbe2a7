"""emofuse batch: manifests and their rows' fates, the crash-safe writer, resuming a killed run, a worker
that dies, and the Ray engine giving the local engine's rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from emofuse.batch import BatchOptions, Writer, collect, read_rows
from emofuse.errors import InputError

EMOFUSE = [sys.executable, "-m", "emofuse.cli"]


def _write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def clips(media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten distinct 2.5 s pieces of real English speech, a video with a face, and a broken file."""
    from emofuse.media import load_audio

    d = tmp_path_factory.mktemp("clips")
    x = load_audio(media / "two_cities.wav")
    for i in range(10):
        _write_wav(d / f"clip{i:02d}.wav", x[int(i * 4.0 * 16000):int((i * 4.0 + 2.5) * 16000)])
    (d / "face.mp4").write_bytes((media / "single_face.mp4").read_bytes())
    (d / "broken.mp4").write_bytes(b"not a video")
    return d


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EMOFUSE, "batch", *args, "--no-progress"], capture_output=True, text=True, timeout=600,
                          env=os.environ | (env or {}))


def _ledger(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "inputs.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------- no models

def test_manifest_rows_each_get_a_fate(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    m = tmp_path / "sub" / "m.csv"
    m.write_text("path,speaker\n../a.wav,s1\n,s2\n../a.wav,s3,extra\n/nowhere/b.wav,s4\n")
    j = tmp_path / "m.jsonl"
    j.write_text('{"path": "a.wav", "take": 2}\nnot json\n[1, 2]\n{"speaker": "s5"}\n\n')
    jobs, rejected, cols = collect([m, j, str(tmp_path / "*.nothing")])
    assert [(Path(x.path).resolve(), x.meta) for x in jobs] == [
        ((tmp_path / "a.wav").resolve(), {"speaker": "s1"}), (Path("/nowhere/b.wav"), {"speaker": "s4"}),
        ((tmp_path / "a.wav").resolve(), {"take": "2"})]
    assert cols == ["speaker", "take"]
    why = {r.origin.rsplit("/", 1)[-1]: (r.status, r.reason) for r in rejected}
    assert why["m.csv:3"][0] == "invalid" and "no 'path'" in why["m.csv:3"][1]
    assert why["m.csv:4"][0] == "invalid" and "fields" in why["m.csv:4"][1]
    assert "not JSON" in why["m.jsonl:2"][1] and "not a JSON object" in why["m.jsonl:3"][1]
    assert "no 'path'" in why["m.jsonl:4"][1]
    assert why["*.nothing"][0] == "missing"


def test_a_spreadsheets_csv_with_a_bom_and_crlf_reads_as_any_other(tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_bytes(b"\xef\xbb\xbfpath,speaker\r\na.wav,s1\r\n")
    jobs, rejected, cols = collect([m])
    assert [(Path(j.path).name, j.meta) for j in jobs] == [("a.wav", {"speaker": "s1"})] and not rejected
    assert cols == ["speaker"]


def test_unusable_manifests_and_options_are_refused_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,speaker\na.wav,s1\n")
    with pytest.raises(InputError, match="no 'path' column.*file, speaker"):
        collect([bad])
    clash = tmp_path / "clash.csv"
    clash.write_text("path,label\na.wav,happy\n")
    with pytest.raises(InputError, match="label clash.*meta_label"):
        collect([clash])
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path\ncaf\xe9.wav\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        collect([latin])
    for kw, msg in [({"format": "csv"}, "jsonl or parquet"), ({"workers": 0}, "--workers"),
                    ({"address": "auto"}, "--engine ray"), ({"engine": "spark"}, "local or ray"),
                    ({"chunk": 1.5}, "--chunk"), ({"retries": -1}, "--retries"), ({"timeout": 0}, "--timeout"),
                    ({"timeout": 5, "engine": "ray"}, "local engine")]:
        with pytest.raises(InputError, match=msg):
            BatchOptions(out=tmp_path / "o", **kw)
    with pytest.raises(InputError, match="is a file"):
        BatchOptions(out=bad)


def test_the_options_key_ignores_how_the_same_options_are_written() -> None:
    from emofuse.batch import options_fingerprint
    from emofuse.pipeline import AnalyzerOptions

    a = options_fingerprint(AnalyzerOptions(modalities=("text", "voice")))
    assert a == options_fingerprint(AnalyzerOptions(modalities=("voice", "text"), fusion="poe"))
    assert a != options_fingerprint(AnalyzerOptions(modalities=("voice", "text"), fusion="confidence"))
    assert options_fingerprint(AnalyzerOptions(threads=1)) == options_fingerprint(AnalyzerOptions(threads=2))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_writer_drops_what_no_ledger_line_covers(tmp_path: Path, fmt: str) -> None:
    opts = BatchOptions(out=tmp_path / "run", format=fmt, part_rows=1)
    header = {"format": "emofuse-batch/1", "output": fmt, "options": {"fps": 5.0}}
    row = {"label": "happy", "text": "hi", "segment": 0}
    w = Writer(opts, header, ["speaker"])
    w.commit({"key": "k1", "input": "a", "status": "ok", "meta": {"speaker": "s1"}}, [row])
    w.commit({"key": "k2", "input": "b", "status": "failed"}, [row | {"label": "error"}])
    w.close()
    # a kill between the rows and their ledger line, and one in the middle of a ledger line
    if fmt == "jsonl":
        with open(tmp_path / "run" / "segments.jsonl", "a") as f:
            f.write(json.dumps({"key": "k3"}) + "\n" + '{"key": "k4", "lab')
    else:
        (tmp_path / "run" / "segments" / "part-00007.parquet").write_bytes(b"PAR1 torn")
    with open(tmp_path / "run" / "inputs.jsonl", "a") as f:
        f.write('{"key": "k3", "stat')
    w = Writer(opts, header, ["speaker"])
    assert w.done_keys() == {"k1", "k2"}
    w.close()
    rows = read_rows(tmp_path / "run")
    assert [(r["key"], r["label"], r["speaker"]) for r in rows] == [("k1", "happy", "s1"), ("k2", "error", None)]
    assert len(_ledger(tmp_path / "run")) == 2
    with pytest.raises(InputError, match="other analysis options.*fps"):
        Writer(opts, header | {"options": {"fps": 2.0}}, [])
    with pytest.raises(InputError, match="--format"):
        Writer(BatchOptions(out=tmp_path / "run", format="parquet" if fmt == "jsonl" else "jsonl"), header, [])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_retry_failed_replaces_the_failed_inputs_rows(tmp_path: Path, fmt: str) -> None:
    opts = BatchOptions(out=tmp_path / "run", format=fmt, part_rows=1, retry_failed=True)
    header = {"format": "emofuse-batch/1", "output": fmt, "options": {}}
    w = Writer(opts, header, [])
    w.commit({"key": "k1", "input": "a", "status": "ok"}, [{"label": "happy", "segment": 0}])
    w.commit({"key": "k2", "input": "b", "status": "failed"}, [{"label": "error", "text": "died"}])
    w.close()
    w = Writer(opts, header, [])
    w.retry_failed({"k2"})
    assert w.done_keys() == {"k1"}
    w.close()
    # killed before k2 was analysed again: a resumed run still knows k2 is to do, and its error row is gone
    w = Writer(opts, header, [])
    assert w.done_keys() == {"k1"} and [r["key"] for r in read_rows(tmp_path / "run")] == ["k1"]
    w.commit({"key": "k2", "input": "b", "status": "ok"}, [{"label": "sad", "segment": 0}])
    w.close()
    w = Writer(opts, header, [])
    assert w.latest() == {"k1": "ok", "k2": "ok"}
    w.close()
    assert sorted((r["key"], r["label"]) for r in read_rows(tmp_path / "run")) == [("k1", "happy"), ("k2", "sad")]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_retry_a_kill_interrupted_is_finished_by_the_next_run(tmp_path: Path, fmt: str) -> None:
    opts = BatchOptions(out=tmp_path / "run", format=fmt, part_rows=1)
    header = {"format": "emofuse-batch/1", "output": fmt, "options": {}}
    w = Writer(opts, header, [])
    w.commit({"key": "k1", "input": "a", "status": "failed"}, [{"label": "error", "text": "died"}])
    w.commit({"key": "k2", "input": "b", "status": "failed"}, [{"label": "error", "text": "died"}])
    w.close()
    (tmp_path / "run" / "retry.json").write_text('["k1"]')  # killed right after the intent was written
    w = Writer(opts, header, [])
    assert w.latest() == {"k2": "failed"} and not (tmp_path / "run" / "retry.json").exists()
    w.close()
    assert [r["key"] for r in read_rows(tmp_path / "run")] == ["k2"]


def test_torn_ledger_lines_lose_only_their_inputs(tmp_path: Path) -> None:
    opts = BatchOptions(out=tmp_path / "run", format="parquet", part_rows=3)
    header = {"format": "emofuse-batch/1", "output": "parquet", "options": {}}
    w = Writer(opts, header, [])
    for k in ("a", "b", "c"):
        w.commit({"key": k, "input": k, "status": "ok"}, [{"label": "happy", "segment": 0}])
    w.close()
    ledger = tmp_path / "run" / "inputs.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(lines[0] + lines[1].rstrip(b"\n"))  # one part, its ledger write cut inside b's line
    w = Writer(opts, header, [])
    assert w.done_keys() == {"a"}
    for k in ("b", "c"):  # analysed again
        w.commit({"key": k, "input": k, "status": "ok"}, [{"label": "sad", "segment": 0}])
    w.close()
    assert sorted(r["key"] for r in read_rows(tmp_path / "run")) == ["a", "b", "c"]  # no row twice


# ---------------------------------------------------------------------------------------------- with models

VOICE = ["--modalities", "voice,text", "--asr-model", "whisper-tiny.en"]


def test_a_killed_run_resumes_with_nothing_twice_and_nothing_lost(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([*EMOFUSE, "batch", str(clips), "--out", str(out), "--workers", "2", "--chunk", "1",
                             *VOICE, "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "inputs.jsonl").exists() and sum(e["status"] == "ok" for e in _ledger(out)) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {e["key"] for e in _ledger(out) if e["status"] == "ok"}
    assert 3 <= len(first) < 11
    done_before = sum(1 for e in _ledger(out) if e["status"] in ("ok", "failed"))
    r = _cli(str(clips), "--out", str(out), "--workers", "2", *VOICE)
    assert r.returncode == 1, r.stderr  # broken.mp4 failed (in this run or the killed one), and that is the status
    assert f"{12 - done_before} analysed" in r.stderr and f"{done_before} already done" in r.stderr
    ledger = _ledger(out)
    keys = Counter(e["key"] for e in ledger)
    assert all(n == 1 for n in keys.values()), keys  # nothing recorded twice
    assert sorted(Path(e["input"]).name for e in ledger) == sorted(p.name for p in clips.iterdir())  # none lost
    status = {Path(e["input"]).name: e for e in ledger}
    assert status["broken.mp4"]["status"] == "failed" and "cannot be decoded" in status["broken.mp4"]["error"]
    assert status["face.mp4"]["status"] == "ok"
    rows = read_rows(out)
    assert Counter(r["key"] for r in rows if r["segment"] == 0 or r["label"] == "error" or r["segment"] is None) \
        == Counter(keys)  # one first row per input, none from the killed run's torn tail
    assert any(r["text"] for r in rows if r["input"].endswith("clip00.wav"))
    again = _cli(str(clips), "--out", str(out), "--workers", "2", *VOICE)
    assert "0 analysed" in again.stderr and len(_ledger(out)) == len(ledger)


def test_a_worker_that_dies_costs_only_its_input(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = _cli(str(clips / "clip0*.wav"), "--out", str(out), "--workers", "1", "--chunk", "4", *VOICE,
             env={"EMOFUSE_BATCH_CRASH_ON": "clip02.wav"})
    assert r.returncode == 1, r.stderr
    status = {Path(e["input"]).name: e for e in _ledger(out)}
    assert len(status) == 10
    dead = status.pop("clip02.wav")
    assert dead["status"] == "failed" and dead["attempts"] == 2 and "died" in dead["error"]
    assert all(e["status"] == "ok" for e in status.values()), status
    assert [r["label"] for r in read_rows(out) if r["input"].endswith("clip02.wav")] == ["error"]
    again = _cli(str(clips / "clip0*.wav"), "--out", str(out), "--workers", "1", *VOICE, "--retry-failed")
    assert again.returncode == 0 and "1 analysed" in again.stderr, again.stderr  # e.g. after freeing memory
    assert [r["label"] for r in read_rows(out) if r["input"].endswith("clip02.wav")] != ["error"]


def test_an_input_that_hangs_is_stopped_by_the_timeout(clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = _cli(str(clips / "clip0[0-3].wav"), "--out", str(out), "--workers", "1", "--chunk", "4", "--timeout", "3",
             *VOICE, env={"EMOFUSE_BATCH_HANG_ON": "clip02.wav"})
    assert r.returncode == 1, r.stderr
    status = {Path(e["input"]).name: e for e in _ledger(out)}
    assert status["clip02.wav"]["status"] == "failed" and "--timeout 3 s" in status["clip02.wav"]["error"]
    assert [status[f"clip0{i}.wav"]["status"] for i in (0, 1, 3)] == ["ok"] * 3


def test_ray_engine_gives_the_local_engines_rows(clips: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray.data")
    inputs = [str(clips / "clip0[0-3].wav"), str(clips / "face.mp4"), str(clips / "broken.mp4")]
    local = _cli(*inputs, "--out", str(tmp_path / "local"), *VOICE)
    ray = _cli(*inputs, "--out", str(tmp_path / "ray"), "--engine", "ray", "--format", "parquet", *VOICE)
    assert local.returncode == ray.returncode == 1, ray.stderr

    def key(r: dict) -> tuple:
        return r["key"], -1 if r["segment"] is None else r["segment"]

    a, b = sorted(read_rows(tmp_path / "local"), key=key), sorted(read_rows(tmp_path / "ray"), key=key)
    assert len(a) >= 6 and a == b


def test_a_manifest_run_records_every_rows_fate_and_keeps_its_metadata(clips: Path, tmp_path: Path) -> None:
    m = tmp_path / "m.csv"
    m.write_text(f"path,speaker,take\n{clips}/clip00.wav,s1,1\n{clips}/clip01.wav,s2,1\n{clips}/clip00.wav,s1,2\n"
                 f"missing.wav,s3,1\n{clips}/clip02.wav,s4\n")
    out = tmp_path / "run"
    r = _cli(str(m), "--out", str(out), "--format", "parquet", *VOICE)
    assert r.returncode == 1, r.stderr  # the missing file and the short row
    fate = {e["origin"].rsplit(":", 1)[-1]: e for e in _ledger(out)}
    assert [fate[str(i)]["status"] for i in range(2, 7)] == ["ok", "ok", "duplicate", "missing", "invalid"]
    assert "clip00.wav" in fate["4"]["error"] and "No such file" in fate["5"]["error"]
    rows = read_rows(out)
    assert {(Path(r["input"]).name, r["speaker"], r["take"]) for r in rows} == {("clip00.wav", "s1", "1"),
                                                                                 ("clip01.wav", "s2", "1")}
    import pyarrow.parquet as pq

    schema = pq.read_table(out / "segments").schema
    assert str(schema.field("start").type) == "double" and str(schema.field("segment").type) == "int64"
    again = _cli(str(m), "--out", str(out), "--format", "parquet", *VOICE)
    assert "0 analysed" in again.stderr and len(_ledger(out)) == 5  # nothing recorded twice


def test_ray_engine_a_dying_actor_costs_only_its_input(clips: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray.data")
    out = tmp_path / "run"
    r = _cli(str(clips / "clip0[0-3].wav"), "--out", str(out), "--engine", "ray", "--chunk", "2", *VOICE,
             env={"EMOFUSE_BATCH_CRASH_ON": "clip01.wav"})
    assert r.returncode == 1, r.stderr
    status = {Path(e["input"]).name: e for e in _ledger(out)}
    assert status["clip01.wav"]["status"] == "failed" and "died twice" in status["clip01.wav"]["error"]
    assert [status[f"clip0{i}.wav"]["status"] for i in (0, 2, 3)] == ["ok"] * 3
    assert status["clip00.wav"]["attempts"] == 2  # its chunk-mate, redone alone
