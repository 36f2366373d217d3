"""Retrain on a schedule, as a Prefect flow around `dvc repro`.

    python flows/retrain.py run [--force]                # once, now
    python flows/retrain.py serve --cron "0 3 * * 1"     # long-running: every Monday 03:00
    prefect deploy --all                                 # or: a deployment on a work pool

The flow lives in `ferops.ops.retrain`; prefect.yaml points its deployment at `retrain_flow` here.
"""

from __future__ import annotations

import argparse
import atexit
import json
import sys
from pathlib import Path

from ferops.ops.prefect_setup import prefect_defaults, server_start_failure

prefect_defaults()  # before Prefect is imported: its settings are read once

from ferops.kernel.process import die_with_parent  # noqa: E402
from ferops.ops.retrain import PipelineFailed, quiet_console_tracebacks, retrain_flow  # noqa: E402

DEFAULT_CRON = "0 3 * * 1"

__all__ = ["retrain_flow"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", default=".", help="project root (holds dvc.yaml, params.yaml)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="on failure, show the traceback too"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    once = commands.add_parser("run", help="retrain once, now")
    once.add_argument("--force", action="store_true", help="retrain even when nothing changed")
    serve = commands.add_parser("serve", help="serve the flow on a cron schedule until stopped")
    serve.add_argument("--cron", default=DEFAULT_CRON, help=f"schedule (default {DEFAULT_CRON!r})")
    serve.add_argument("--name", default="scheduled", help="deployment name")
    args = parser.parse_args()
    die_with_parent()  # SIGTERM ends the flow through its cleanup, which stops dvc and its stage
    if not args.verbose:
        quiet_console_tracebacks()
    # The reason is printed at exit: Prefect logs the stop of its temporary server from an exit
    # handler registered later (so run earlier), and the reason should be the last line.
    failure: list[str] = []
    atexit.register(lambda: failure and print(failure[0], file=sys.stderr))
    root = str(Path(args.root).resolve())
    try:
        if args.command == "run":
            print(json.dumps(retrain_flow(root=root, force=args.force), indent=2, default=str))
        else:
            retrain_flow.serve(name=args.name, cron=args.cron, parameters={"root": root})
    except Exception as exc:
        if args.verbose:
            raise
        failure.append(f"error: {one_line(exc)} (-v for the traceback)")
        return 1
    return 0


def one_line(exc: Exception) -> str:
    if isinstance(exc, PipelineFailed):
        return exc.summary
    if line := server_start_failure(exc):
        return line
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"


if __name__ == "__main__":
    sys.exit(main())
