"""Processes that end with what started them, and state that has one owner at a time.

`dvc repro` runs each stage as a child (`$SHELL -c "ferops train"`, which bash and zsh replace
by the command itself). Killing dvc does not kill that child; without help it trains on as an
orphan and races the next run over the same resumable state.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ferops.kernel.errors import FeropsError

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class StateInUse(FeropsError):
    """Another live process owns the state; the message names it."""


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent exits (a no-op elsewhere), and
    turn SIGTERM into SystemExit so that `finally` blocks and context managers still run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def stop_group(process: subprocess.Popen[Any], grace: float = 15) -> None:
    """SIGTERM the process's group (started with start_new_session), then SIGKILL whatever is
    left after `grace` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


@contextmanager
def sole_owner(lock_file: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` for the block, recording this process's PID and
    host in it. The kernel releases the lock when its holder dies, however it dies, so a killed
    owner never blocks the next run; a live one makes this raise StateInUse naming it."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = _owner(handle.read())
            raise StateInUse(
                f"{what} is in use by {owner}; wait for it to finish or stop it, then run again"
            ) from None
        handle.seek(0)
        handle.truncate()
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        handle.write(json.dumps(owner))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


def _owner(recorded: str) -> str:
    try:
        owner = json.loads(recorded)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["since"]))
        return f"process {owner['pid']} on {owner['host']} (since {started})"
    except (ValueError, KeyError, TypeError):
        return "another process"
