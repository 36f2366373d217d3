"""The search as a Prefect flow, runnable on its own (a deployment's entry point, too): `python
flows/tune.py [-v] [--trials N] [--storage URL] [--study NAME]` is `ferops tune` with those
options, which the DVC `tune` stage runs.

The flow lives in `ferops.pipeline.tune`.
"""

from __future__ import annotations

import sys

from ferops.ops.prefect_setup import prefect_defaults

prefect_defaults()  # before Prefect is imported: its settings are read once

from ferops.cli import flow_file  # noqa: E402
from ferops.pipeline.tune import tune_flow  # noqa: E402

__all__ = ["tune_flow"]


if __name__ == "__main__":
    flow_file("flows/tune.py", ["tune"], sys.argv[1:])
