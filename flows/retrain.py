"""Retrain on a schedule, as a Prefect flow around `dvc repro`: prefect.yaml's deployment entry
point. The command line is `ferops retrain`; this file runs it too.

    ferops retrain run [--force]                  # once, now
    ferops retrain serve --cron "0 3 * * 1"       # long-running: every Monday 03:00 UTC
    prefect deploy --all                          # or: a deployment on a work pool
    python flows/retrain.py [-v] run              # the same as `ferops [-v] retrain run`

The flow lives in `ferops.ops.retrain`.
"""

from __future__ import annotations

import sys

from ferops.ops.prefect_setup import prefect_defaults

prefect_defaults()  # before Prefect is imported: its settings are read once

from ferops.cli import RETRAIN_CRON as DEFAULT_CRON  # noqa: E402
from ferops.cli import flow_file  # noqa: E402
from ferops.ops.retrain import retrain_flow  # noqa: E402

__all__ = ["DEFAULT_CRON", "retrain_flow"]


if __name__ == "__main__":
    flow_file("flows/retrain.py", ["retrain"], sys.argv[1:])
