"""Keeping other libraries' chatter off the terminal, so that what a stage prints is what it
did; `ferops -v` leaves all of it on.

On the tests' tiny pipeline, `dvc repro` printed 52 lines (9,216 of 11,735 characters) that
were neither ferops's log lines nor DVC's: TensorFlow's C++ start-up messages (oneDNN, CPU
features, absl), MLflow's warnings and download bars, Prefect's server notes. Now 3.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO/WARNING/ERROR log lines
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts: 100%|███|"
    "PREFECT_LOGGING_LEVEL": "WARNING",  # temporary server and flow-run notes in stages
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # "Validating input example...", database set-up
}


_quiet = False


def quiet_libraries() -> None:
    """Settings that must be in place before the libraries load (a user's own win), and the
    Python warnings that say nothing a ferops user can act on."""
    global _quiet
    _quiet = True
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    # Keras' ONNX exporter probes np.object, deprecated in NumPy.
    warnings.filterwarnings(
        "ignore", message=".*`np.object` will be defined", category=FutureWarning
    )


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr (fd 2) closed: its C++ start-up lines
    (absl's "All log messages before absl::InitializeLog()...", oneDNN's note) are written
    while it loads, before any setting is read. Anything it raises is still raised. Only
    after quiet_libraries(): `ferops -v` and library users see TensorFlow as it is."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr_closed():
        import tensorflow  # noqa: F401


@contextmanager
def native_stderr_closed() -> Iterator[None]:
    """fd 2 pointed at /dev/null while the block runs, after quiet_libraries() only: for C++
    lines no setting reaches (TensorFlow's start-up, LiteRT's "Created TensorFlow Lite
    XNNPACK delegate for CPU." when an interpreter allocates its tensors)."""
    if not _quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
