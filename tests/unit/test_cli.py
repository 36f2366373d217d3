"""The command line: every command has help (readable), --version, and a bad params file is a
one-line error."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from ferops.cli import app


def command_paths(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command as registered, groups walked: `("registry", "check")`, `("predict",)`."""
    paths = [(*prefix, info.name or info.callback.__name__) for info in group.registered_commands]
    for sub in group.registered_groups:
        paths += command_paths(sub.typer_instance, (*prefix, sub.name))
    return paths


def test_every_command_has_help():
    """Each registered command, read from the app itself: one added later is checked too."""
    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    commands = command_paths(app)
    assert len(commands) >= 15 and ("registry", "check") in commands
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
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


def test_the_monitor_flow_refuses_what_only_the_plain_command_reads(tmp_path):
    """`monitor --flow` and `--every`: a window that moves with each run (a span, not a time),
    and none of the plain command's own options: refused before any flow runs."""
    runner = CliRunner()
    root = ["--root", str(tmp_path)]
    fixed = runner.invoke(app, ["monitor", "--flow", "--since", "2026-12-01", *root])
    assert fixed.exit_code == 2 and "a span back (24h, 7d)" in fixed.output
    mixed = runner.invoke(app, ["monitor", "--every", "0 6 * * *", "--until", "1h", "--no-track"])
    assert mixed.exit_code == 2
    assert "--until, --no-track: not with --flow or --every" in mixed.output
