"""The README, followed top to bottom as a newcomer would: every block marked `run` runs as
written, in order, in a fresh copy of the project (the tests' tiny params); a `server` block
is started and must answer on its port; only `skip` blocks (each with its reason) are left out.
So a quick-start line that stops working fails CI, not the next newcomer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.scenes import paste, scene
from tests.helpers import (
    GIT_IDENTITY,
    REPO,
    ReadmeBlock,
    copy_project,
    detectable,
    readme_blocks,
    run,
    write_clip,
)

FIVE_MB = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory, tiny_faceset) -> Path:
    """A fresh copy of the project (a commit of its own, as a clone has), its environment the
    one `make install` built, and the files the README's commands name."""
    project = copy_project(tmp_path_factory.mktemp("readme") / "ferops")
    (project / ".venv").symlink_to(REPO / ".venv")
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "a clone"], project)

    a, b = detectable(tiny_faceset, 2)
    group = scene()
    paste(group, a, 60, 80, 140)
    paste(group, b, 360, 180, 120)
    cv2.imwrite(str(project / "group-photo.jpg"), group)
    (project / "photos" / "2025").mkdir(parents=True)
    cv2.imwrite(str(project / "photos" / "beach.png"), group)
    cv2.imwrite(str(project / "photos" / "2025" / "party.jpg"), group)
    cv2.imwrite(str(project / "face48.png"), a)
    write_clip(project / "clip.mp4", [a, b], frames=12)
    cv2.imwrite(str(project / "face.jpg"), big_photo(a), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert 4_500_000 < (project / "face.jpg").stat().st_size < FIVE_MB  # about 5 MB: the cap
    return project


def big_photo(face: np.ndarray) -> np.ndarray:
    """A 3000x2300 camera-sized photo with the face in its centre square, grainy enough to
    weigh about 5 MB as a JPEG (the server's cap per image is 5 MiB)."""
    rng = np.random.default_rng(0)
    photo = rng.normal(128, 40, (2300, 3000, 3)).clip(0, 255).astype(np.uint8)
    side = 2300
    left = (3000 - side) // 2
    centre = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
    photo[:, left : left + side] = cv2.cvtColor(centre, cv2.COLOR_GRAY2BGR)
    noise = rng.normal(0, 40, photo.shape)
    return (photo + noise).clip(0, 255).astype(np.uint8)


def newcomer_env(project: Path) -> dict[str, str]:
    """A user's shell: no venv on PATH until a block sources it, no test-session settings."""
    venv_bin = str(REPO / ".venv" / "bin")
    path = ":".join(p for p in os.environ["PATH"].split(":") if p != venv_bin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.pop("VIRTUAL_ENV", None)
    return {
        **env,
        **GIT_IDENTITY,
        "PATH": path,
        "PREFECT_HOME": str(project.parent / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def command(block: ReadmeBlock, project: Path) -> list[str]:
    if block.language == "python":
        return [str(project / ".venv" / "bin" / "python"), "-c", block.code]
    return ["bash", "-euo", "pipefail", "-c", block.code]


def wait_for(port: int, server: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (a 404 for / is still an answer)
        except OSError:
            assert server.poll() is None, f"exited:\n{log.read_text()[-3000:]}"
            time.sleep(1)
    raise AssertionError(f"nothing answered on port {port}:\n{log.read_text()[-3000:]}")


def stop(servers: list[subprocess.Popen]) -> None:
    while servers:
        server = servers.pop()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_the_readme_runs_as_written_top_to_bottom(newcomer):
    env = newcomer_env(newcomer)
    servers: list[subprocess.Popen] = []
    outputs: dict[int, str] = {}
    try:
        for block in readme_blocks():
            where = f"README.md:{block.line}"
            if block.mode == "skip":
                continue
            if block.mode == "server":
                stop(servers)  # one server at a time: the blocks after one are its clients
                log = newcomer.parent / f"server-{block.port}.log"
                servers.append(
                    subprocess.Popen(
                        command(block, newcomer),
                        cwd=newcomer,
                        env=env,
                        stdout=log.open("w"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                wait_for(block.port, servers[-1], log)
                outputs[block.line] = log.read_text()
                continue
            done = subprocess.run(
                command(block, newcomer),
                cwd=newcomer,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
            outputs[block.line] = done.stdout + done.stderr
    finally:
        stop(servers)

    said = {block.code: outputs.get(block.line, "") for block in readme_blocks()}
    served = next(out for code, out in said.items() if "curl" in code)
    answer = json.loads(served[served.index("{") :].splitlines()[0])
    assert set(answer["predictions"][0]) >= {"emotion", "confidence", "p_happy"}
    relocated = next(out for code, out in said.items() if "make relocate" in code)
    assert "artifact locations moved from" in relocated
    predicted = next(out for code, out in said.items() if "predict group-photo.jpg photos/" in code)
    assert "photos/2025/party.jpg" in predicted and "photos/beach.png" in predicted
    assert (newcomer / "out" / "group-photo.annotated.png").is_file()
    assert (newcomer / "annotated.mp4").is_file() and (newcomer / "timeline.csv").is_file()
