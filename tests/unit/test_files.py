"""Atomic outputs are ordinary files: readable by others under the usual umask, private under a
private one, and a failed write replaces nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from ferops.kernel.files import atomic_path, replace_dir, write_json, write_npz


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    previous = os.umask(0o022)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(previous)


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_outputs_honour_the_umask(umask, tmp_path, mask, file_mode, dir_mode):
    umask(mask)
    write_json(tmp_path / "report.json", {"accuracy": 0.9})
    write_npz(tmp_path / "faces.npz", x=np.zeros((2, 48, 48), np.uint8))
    staged = tmp_path / ".staged"
    staged.mkdir(mode=0o700)
    write_json(staged / "result.json", {"success": True})
    replace_dir(staged, tmp_path / "validation")

    assert mode(tmp_path / "report.json") == file_mode
    assert mode(tmp_path / "faces.npz") == file_mode
    assert mode(tmp_path / "validation") == dir_mode
    assert mode(tmp_path / "validation" / "result.json") == file_mode


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.9})
    with pytest.raises(RuntimeError), atomic_path(target) as staged:
        staged.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == '{\n  "accuracy": 0.9\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
