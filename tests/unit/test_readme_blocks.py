"""Every command block in the README says how tests/e2e/test_readme.py treats it: run, start
as a server, or skip with a reason. A block added without a marker fails here, so none can
slip out of the walk-through unnoticed."""

from __future__ import annotations

from tests.helpers import readme_blocks


def test_every_command_block_in_the_readme_is_marked():
    blocks = readme_blocks()
    unmarked = [f"README.md:{b.line} ({b.language})" for b in blocks if b.mode is None]
    assert unmarked == [], f"blocks without a readme-test marker: {unmarked}"
    assert all(b.reason for b in blocks if b.mode == "skip")
    assert all(b.port for b in blocks if b.mode == "server")
    runnable = [b for b in blocks if b.mode != "skip"]
    assert len(runnable) >= len(blocks) - 2, "the README is a walk-through, not a list of skips"


def test_the_marker_check_sees_a_block_without_one(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- readme-test: run -->\n```bash\nls\n```\n\ntext\n```python\nprint(1)\n```\n"
        "```\nnot a command block\n```\n<!-- readme-test: skip (needs a camera) -->\n"
        "```bash\nferops stream --source 0\n```\n"
    )
    blocks = readme_blocks(readme)
    assert [(b.language, b.mode) for b in blocks] == [
        ("bash", "run"),
        ("python", None),
        ("bash", "skip"),
    ]
    assert blocks[2].reason == "needs a camera" and blocks[0].code == "ls\n"
