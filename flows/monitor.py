"""Watch the served model, as a Prefect flow around `ferops monitor`.

    python flows/monitor.py run [--hours 24]             # once, now
    python flows/monitor.py serve --cron "0 6 * * *"     # long-running: every day at 06:00
    prefect deploy --all                                 # or: the deployment in prefect.yaml

The flow lives in `ferops.ops.monitor_flow`; its verdict is the `ferops-monitor` artifact.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ferops.ops.prefect_setup import prefect_defaults

prefect_defaults()  # before Prefect is imported: its settings are read once

from ferops.ops.monitor_flow import monitor_flow  # noqa: E402

DEFAULT_CRON = "0 6 * * *"

__all__ = ["monitor_flow"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", default=".", help="project root (holds params.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    once = commands.add_parser("run", help="judge once, now")
    once.add_argument("--hours", type=float, help="window: the last HOURS of answers")
    serve = commands.add_parser("serve", help="serve the flow on a cron schedule until stopped")
    serve.add_argument("--cron", default=DEFAULT_CRON, help=f"schedule (default {DEFAULT_CRON!r})")
    serve.add_argument("--name", default="scheduled", help="deployment name")
    args = parser.parse_args()
    root = str(Path(args.root).resolve())
    if args.command == "run":
        print(json.dumps(monitor_flow(root=root, hours=args.hours), indent=2))
    else:
        monitor_flow.serve(name=args.name, cron=args.cron, parameters={"root": root})
    return 0


if __name__ == "__main__":
    sys.exit(main())
