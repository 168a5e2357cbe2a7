"""The command line's contract: options declared once per command (help renders every name), every
EmofuseError a one-line message with exit 2, anything else a short bug-report message with exit 3, never a
traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from emofuse.cli import BUG_REPORT, app

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["analyze", "train", "evaluate", "extract", "setup", "components", "networks"])
def test_every_command_has_help(command: str) -> None:
    r = CliRunner().invoke(app, [command, "--help"])
    assert r.exit_code == 0 and "Usage" in r.stdout


def test_help_keeps_bracketed_names() -> None:
    """Rich markup must not swallow "[fusion]" or "[model]" in the help text."""
    r = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert "[fusion]" in r.stdout and "[model]" in r.stdout


def test_input_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["train", str(tmp_path / "absent.toml")])
    assert r.exit_code == 2 and "does not exist" in r.stderr and "Traceback" not in r.output
    bad = tmp_path / "c.toml"
    bad.write_text('name = "x"\n[data]\ncorpora = ["ravdess"]\nroot = "r"\nextractor = "voice-nope"\n')
    r = CliRunner().invoke(app, ["train", str(bad)])
    assert r.exit_code == 2 and "data.extractor" in r.stderr and "voice-whisper-base" in r.stderr


def test_any_other_exception_is_a_bug_report_with_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    import emofuse.training.run as run_mod

    def boom(*a: object, **k: object) -> None:
        raise ZeroDivisionError("something inside emofuse went wrong")

    monkeypatch.setattr(run_mod, "run", boom)
    r = CliRunner().invoke(app, ["train", str(ROOT / "configs" / "voice_loco.toml")])
    assert r.exit_code == 3, r.output
    assert "internal error: ZeroDivisionError: something inside emofuse went wrong" in r.stderr
    assert BUG_REPORT.split(":")[0] in r.stderr.replace("\n", " ") and "Traceback" not in r.output
    monkeypatch.setenv("EMOFUSE_DEBUG", "1")  # the traceback on request
    r = CliRunner().invoke(app, ["train", str(ROOT / "configs" / "voice_loco.toml")])
    assert isinstance(r.exception, ZeroDivisionError)
