"""The README's copy recipe: `cp -a` a project, then `make relocate` in the copy. Before it,
the copy's .venv imports the original's src/ and runs the original's interpreter; after it,
everything points at the copy."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.helpers import copy_project, run


def make_venv(project: Path) -> Path:
    """A venv laid out as `make install` leaves it: ferops installed editable (a .pth naming
    the project's src/), a console script whose #! names the venv's python, an activate
    script, DVC's plots template in .dvc/config.local. Its other packages are this test run's."""
    venv = project / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "__editable__.ferops-0.1.0.pth").write_text(f"{project / 'src'}\n")
    (site / "test-run-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = venv / "bin" / "ferops"
    script.write_text(f"#!{venv}/bin/python\nfrom ferops.cli import app\napp()\n")
    script.chmod(0o755)
    (project / ".dvc" / "config.local").write_text(
        f"[plots]\n    html_template = {venv}/share/ferops/web/dvc-plots.html\n"
    )
    return venv


def imported_from(project: Path) -> str:
    python = project / ".venv" / "bin" / "python"
    code = "import ferops; print(ferops.__file__)"
    return run([str(python), "-c", code], project).stdout.strip()


def test_a_copied_project_imports_its_own_code_after_make_relocate(tmp_path):
    original = copy_project(tmp_path / "original")
    make_venv(original)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
    assert imported_from(copy).startswith(str(original / "src"))  # the trap

    relocated = run(["make", "-s", "relocate"], copy)
    assert f"moved from {original} to here" in relocated.stdout, relocated.stdout

    assert imported_from(copy) == str(copy / "src" / "ferops" / "__init__.py")
    assert (copy / ".venv" / "bin" / "ferops").read_text().startswith(f"#!{copy}/.venv/bin/")
    assert f'VIRTUAL_ENV="{copy}/.venv"' in (copy / ".venv" / "bin" / "activate").read_text()
    assert f"{copy}/.venv/share" in (copy / ".dvc" / "config.local").read_text()
    own = run([str(copy / ".venv" / "bin" / "ferops"), "relocate", "--root", str(copy)], copy)
    assert "nothing to do" in own.stdout  # the copy's own entry point, its own code
    assert imported_from(original).startswith(str(original / "src"))  # the original untouched
