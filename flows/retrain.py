"""Retrain on a schedule, as a Prefect flow around `dvc repro`.

    python flows/retrain.py run [--force]                # once, now
    python flows/retrain.py serve --cron "0 3 * * 1"     # long-running: every Monday 03:00
    prefect deploy --all                                 # or: a deployment on a work pool

The flow lives in `ferops.ops.retrain`; prefect.yaml points its deployment at `retrain_flow` here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ferops.kernel.process import die_with_parent
from ferops.ops.retrain import retrain_flow

DEFAULT_CRON = "0 3 * * 1"

__all__ = ["retrain_flow"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", default=".", help="project root (holds dvc.yaml, params.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    once = commands.add_parser("run", help="retrain once, now")
    once.add_argument("--force", action="store_true", help="retrain even when nothing changed")
    serve = commands.add_parser("serve", help="serve the flow on a cron schedule until stopped")
    serve.add_argument("--cron", default=DEFAULT_CRON, help=f"schedule (default {DEFAULT_CRON!r})")
    serve.add_argument("--name", default="scheduled", help="deployment name")
    args = parser.parse_args()
    die_with_parent()  # SIGTERM ends the flow through its cleanup, which stops dvc and its stage
    root = str(Path(args.root).resolve())
    if args.command == "run":
        print(json.dumps(retrain_flow(root=root, force=args.force), indent=2, default=str))
    else:
        retrain_flow.serve(name=args.name, cron=args.cron, parameters={"root": root})


if __name__ == "__main__":
    main()
