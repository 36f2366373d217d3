"""`python flows/retrain.py` when Prefect's temporary server cannot start: one line that says
what to do, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import REPO


def test_a_temporary_prefect_server_that_does_not_start_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "0"  # no time to start at all
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    result = subprocess.run(
        [sys.executable, str(REPO / "flows" / "retrain.py"), "run", "--root", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Prefect's temporary server did not start within 0 s"), last
    assert "PREFECT_API_URL" in last
