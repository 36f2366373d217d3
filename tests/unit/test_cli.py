"""The command line: every command has help (readable), --version, and a bad params file is a
one-line error."""

from __future__ import annotations

from typer.testing import CliRunner

from ferops.cli import app


def test_every_command_has_help():
    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    for command in (
        "ingest",
        "preprocess",
        "validate",
        "tune",
        "tune-worker",
        "train",
        "evaluate",
        "register",
        "predict",
    ):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command
    predict_help = runner.invoke(app, ["predict", "--help"]).output
    assert "FILE|URI" in predict_help and "<str>" not in predict_help  # readable metavars


def test_version_is_the_package_s():
    from ferops import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ferops {__version__}"


def test_a_bad_params_file_is_a_one_line_error(tmp_path):
    (tmp_path / "params.yaml").write_text("data:\n  source: kaggle\n")
    result = CliRunner().invoke(app, ["ingest", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "data.source must be one of" in result.output
