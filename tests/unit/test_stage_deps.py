"""dvc.yaml's deps cover the code each stage runs: edit any module a stage imports (directly,
inside a function, or through another module) and `dvc status` sees the stage as changed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ferops.pipeline import STAGES
from tests.helpers import REPO

SRC = REPO / "src"
# Each `ferops <stage>` command calls ferops.pipeline.<stage>.run. The CLI itself only parses
# arguments and calls it, so cli.py is left out (else any new command would rerun every stage).
STAGE_MODULES = {name: f"ferops.pipeline.{name}" for name in STAGES}


def module_file(name: str) -> Path | None:
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def ferops_imports(path: Path) -> set[str]:
    """Every ferops module `path` imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.startswith("ferops") and module_file(name)}


def code_run_by(module: str) -> set[Path]:
    """The files of `module`, its packages and everything they import, transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [
            ".".join(parts[:i]) for i in range(1, len(parts)) if module_file(".".join(parts[:i]))
        ]
        todo += sorted(ferops_imports(module_file(name)))
    return {module_file(name).relative_to(REPO) for name in seen}


@pytest.mark.parametrize("stage", sorted(STAGE_MODULES))
def test_each_stage_depends_on_all_the_code_it_runs(stage):
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["deps"]
    code_deps = [Path(dep) for dep in declared if str(dep).startswith("src/")]
    missing = sorted(
        str(path)
        for path in code_run_by(STAGE_MODULES[stage])
        if not any(path == dep or dep in path.parents for dep in code_deps)
    )
    assert not missing, f"dvc.yaml: stage {stage} runs but does not depend on {missing}"


def test_the_stage_table_names_every_stage():
    assert set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]) == set(STAGE_MODULES)
