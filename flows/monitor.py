"""Watch the served model on a schedule, as a Prefect flow around `ferops monitor`: prefect.yaml's
deployment entry point. The command line is `ferops monitor --flow`; this file runs it too.

    ferops monitor --flow [--since 24h]           # once, now: the ferops-monitor artifact
    ferops monitor --every "0 6 * * *"            # long-running: every day at 06:00 UTC
    prefect deploy --all                          # or: the deployment in prefect.yaml
    python flows/monitor.py [-v] [--since 24h]    # the same as `ferops [-v] monitor --flow`

The flow lives in `ferops.ops.monitor_flow`.
"""

from __future__ import annotations

import sys

from ferops.ops.prefect_setup import prefect_defaults

prefect_defaults()  # before Prefect is imported: its settings are read once

from ferops.cli import flow_file  # noqa: E402
from ferops.ops.monitor_flow import monitor_flow  # noqa: E402

__all__ = ["monitor_flow"]


if __name__ == "__main__":
    flow_file("flows/monitor.py", ["monitor", "--flow"], sys.argv[1:])
