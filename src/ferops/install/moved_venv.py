"""A copied or moved project's own environment: `.venv` and `.dvc/config.local` point at the
folder they were made in.

`make install` writes absolute paths: the editable install's `.pth` file (so the copy's
Python imported the *original* folder's `src/`), the scripts' `#!` lines and `activate`
(so `.venv/bin/ferops` ran the original's interpreter), and DVC's plots template. After
`cp -a`, the copy half-worked: it ran the old code. `repair` rewrites each of them to the
folder the project is in now; `ferops relocate` calls it (run as `make relocate`, which puts
this folder's `src/` first, since the copy's own entry points still lead to the old one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VENV = ".venv"
DVC_LOCAL_CONFIG = Path(".dvc") / "config.local"


@dataclass(frozen=True)
class VenvRepair:
    old_root: Path | None  # None: the environment already points here (or there is none)
    files: list[Path]  # the files rewritten


def editable_pth(root: Path) -> Path | None:
    """The `.pth` file of ferops' editable install in the project's venv, if there is one."""
    return next(
        iter(sorted((root / VENV).glob("lib/python*/site-packages/__editable__.ferops*.pth"))), None
    )


def installed_from(root: Path) -> Path | None:
    """The project folder the venv's editable install imports ferops from."""
    pth = editable_pth(root)
    if pth is None:
        return None
    source = Path(pth.read_text().strip().splitlines()[0])
    return source.parent


def repair(root: Path) -> VenvRepair:
    """Rewrite every path under the folder the venv came from to this folder: the editable
    install, the venv's scripts and activate files, DVC's local config. Idempotent."""
    here = root.resolve()
    if (here / VENV).is_symlink():  # another folder's environment, shared: not ours to rewrite
        return VenvRepair(None, [])
    old = installed_from(here)
    if old is None or old == here:
        return VenvRepair(None, [])
    candidates = [editable_pth(here), here / DVC_LOCAL_CONFIG]
    candidates += sorted(p for p in (here / VENV / "bin").iterdir() if p.is_file())
    changed = [path for path in candidates if path is not None and _rewrite(path, old, here)]
    return VenvRepair(old, changed)


def _rewrite(path: Path, old: Path, new: Path) -> bool:
    """Replace `old/` (the venv and src paths, not a sibling such as `old-2/`) in a text file."""
    if not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as f:
        if b"\0" in f.read(4096):  # a binary (uv, a compiled launcher): no project path
            return False
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):  # a binary: it records no project path
        return False
    updated = text.replace(f"{old}/", f"{new}/")
    if updated == text:
        return False
    mode = path.stat().st_mode
    path.write_text(updated)
    path.chmod(mode)
    return True
