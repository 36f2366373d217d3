"""The servers behind scale-out tuning, started on loopback for one machine's use.

PostgreSQL (Debian's package) holds the Optuna study and MLflow's runs, an MLflow tracking
server takes every worker's runs and artifacts, and a Prefect server records the flows. Each is
a context manager that starts the real program, waits until it answers and, on exit, stops it
with everything it started. `scripts/tune_cluster.py` and the tests use them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ferops.kernel.errors import FeropsError
from ferops.kernel.process import stop_group

POSTGRES_USER = "ferops"


class ServiceError(FeropsError):
    """A server did not start, or a program it needs is missing."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_program(name: str) -> str:
    """Debian keeps initdb/pg_ctl off PATH, in /usr/lib/postgresql/<version>/bin."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    for bin_dir in reversed(versions):
        if (bin_dir / name).is_file():
            return str(bin_dir / name)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(
            f"{name} not found: install the server with `apt-get install postgresql`"
        )
    return found


@contextmanager
def local_postgres(
    databases: Sequence[str], data_dir: Path | None = None, port: int | None = None
) -> Iterator[str]:
    """A PostgreSQL cluster on 127.0.0.1 with `databases`; yields the server URL (no database).

    The cluster lives in `data_dir` (kept, and reused next time) or in a temporary folder
    (removed). Trust authentication is safe only because it listens on loopback alone.
    """
    temporary = data_dir is None
    home = Path(tempfile.mkdtemp(prefix="ferops-pg-")) if temporary else data_dir
    home.mkdir(parents=True, exist_ok=True)
    cluster = home / "cluster"
    # PostgreSQL refuses to run as root; Debian's package creates the `postgres` user for it.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(home, "postgres")
    port = port or free_port()
    if not (cluster / "PG_VERSION").is_file():
        initdb = [postgres_program("initdb"), "-D", str(cluster), "-U", POSTGRES_USER]
        _check([*as_user, *initdb, "--auth=trust", "--encoding=UTF8", "--no-sync"], "initdb")
    pg_ctl = [*as_user, postgres_program("pg_ctl"), "-D", str(cluster)]
    options = f"-h 127.0.0.1 -p {port} -k {home} -c max_connections=200"
    if temporary:  # nothing to keep, so no need to survive a power cut
        options += " -c fsync=off"
    _check([*pg_ctl, "-o", options, "-l", str(home / "server.log"), "-w", "start"], "pg_ctl start")
    url = f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}"
    try:
        _create_databases(url, databases)
        yield url
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        if temporary:
            shutil.rmtree(home, ignore_errors=True)


def _create_databases(url: str, databases: Sequence[str]) -> None:
    import psycopg

    with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
        for name in databases:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                connection.execute(f'CREATE DATABASE "{name}"')


@contextmanager
def mlflow_server(
    backend_store_uri: str, artifacts_dir: Path, log_path: Path, port: int | None = None
) -> Iterator[str]:
    """`mlflow server` proxying artifacts to `artifacts_dir`; yields its URL."""
    port = port or free_port()
    command = [sys.executable, "-m", "mlflow", "server"]
    command += ["--backend-store-uri", backend_store_uri]
    command += ["--artifacts-destination", str(artifacts_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    url = f"http://127.0.0.1:{port}"
    with background(command, f"{url}/health", log_path):
        yield url


@contextmanager
def prefect_server(home: Path, log_path: Path, port: int | None = None) -> Iterator[str]:
    """`prefect server start` with its database in `home`; yields the API URL."""
    port = port or free_port()
    env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    api = f"http://127.0.0.1:{port}/api"
    with background(command, f"{api}/health", log_path, env=env, timeout=120):
        yield api


@contextmanager
def background(
    command: list[str],
    health_url: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    timeout: float = 90,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` in its own process group, wait for `health_url`, stop the group on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        _wait_until_healthy(process, health_url, log_path, timeout)
        yield process
    finally:
        stop_group(process)


def _wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(
                f"{process.args[2:4]} exited early; see {log_path}:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop_group(process)
    raise ServiceError(f"no answer from {url} after {timeout:.0f} s; see {log_path}")


def _check(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"{what} failed:\n{result.stdout}{result.stderr}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
