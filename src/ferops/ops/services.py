"""The servers behind scale-out tuning, started on loopback for one machine's use.

PostgreSQL (Debian's package) holds the Optuna study and MLflow's runs, an MLflow tracking
server takes every worker's runs and artifacts, and a Prefect server records the flows. Each is
a context manager that starts the real program, waits until it answers and, on exit, stops it
with everything it started. `scripts/tune_cluster.py` and the tests use them.

All three ask for a password (Credentials): PostgreSQL with scram-sha-256, MLflow through its
basic-auth app, Prefect through its server auth string. Clients take theirs from
`client_environment`.
"""

from __future__ import annotations

import os
import secrets
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
from dataclasses import dataclass
from pathlib import Path

from ferops.kernel.errors import FeropsError
from ferops.kernel.process import stop_group

POSTGRES_USER = "ferops"


class ServiceError(FeropsError):
    """A server did not start, or a program it needs is missing."""


@dataclass(frozen=True)
class Credentials:
    """One account for all three servers (PostgreSQL role, MLflow admin, Prefect)."""

    user: str
    password: str

    @classmethod
    def kept_in(cls, path: Path | None, user: str = POSTGRES_USER) -> Credentials:
        """The password stored in `path` (0600, created on first use), or a fresh one."""
        if path is not None and path.is_file():
            return cls(user, path.read_text().strip())
        credentials = cls(user, secrets.token_urlsafe(24))  # URL-safe: it goes into URLs
        if path is not None:
            write_secret(path, credentials.password + "\n")
        return credentials


def write_secret(path: Path, text: str) -> None:
    """`text` in a file only its owner can read (created so: never readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def client_environment(credentials: Credentials) -> dict[str, str]:
    """What an MLflow or Prefect client needs to be let in."""
    return {
        "MLFLOW_TRACKING_USERNAME": credentials.user,
        "MLFLOW_TRACKING_PASSWORD": credentials.password,
        "PREFECT_API_AUTH_STRING": f"{credentials.user}:{credentials.password}",
    }


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
    databases: Sequence[str],
    credentials: Credentials,
    data_dir: Path | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """A PostgreSQL cluster on 127.0.0.1 with `databases`, its role `credentials.user` logging
    in with a scram-sha-256 password; yields the server URL (no database).

    The cluster lives in `data_dir` (kept, and reused next time) or in a temporary folder
    (removed).
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
        _initdb(cluster, credentials, as_user)
    pg_ctl = [*as_user, postgres_program("pg_ctl"), "-D", str(cluster)]
    options = f"-h 127.0.0.1 -p {port} -k {home} -c max_connections=200"
    if temporary:  # nothing to keep, so no need to survive a power cut
        options += " -c fsync=off"
    _check([*pg_ctl, "-o", options, "-l", str(home / "server.log"), "-w", "start"], "pg_ctl start")
    url = f"postgresql://{credentials.user}:{credentials.password}@127.0.0.1:{port}"
    try:
        _create_databases(url, databases)
        yield url
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        if temporary:
            shutil.rmtree(home, ignore_errors=True)


def _initdb(cluster: Path, credentials: Credentials, as_user: list[str]) -> None:
    """A new cluster where every connection, local or TCP, needs the password."""
    with tempfile.TemporaryDirectory(prefix="ferops-pw-") as folder:
        pwfile = Path(folder) / "password"
        write_secret(pwfile, credentials.password + "\n")
        if as_user:  # initdb runs as postgres and must read it
            shutil.chown(folder, "postgres")
            shutil.chown(pwfile, "postgres")
        initdb = [postgres_program("initdb"), "-D", str(cluster), "-U", credentials.user]
        initdb += [f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync"]
        _check([*as_user, *initdb], "initdb")


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
    backend_store_uri: str,
    artifacts_dir: Path,
    log_path: Path,
    credentials: Credentials,
    port: int | None = None,
) -> Iterator[str]:
    """`mlflow server` with the basic-auth app (admin `credentials`; its user database beside
    `artifacts_dir`), proxying artifacts to `artifacts_dir`; yields its URL."""
    port = port or free_port()
    auth_dir = artifacts_dir.parent / "mlflow-auth"
    auth_dir.mkdir(parents=True, exist_ok=True)
    config = auth_dir / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{auth_dir.resolve() / 'users.db'}\n"
        f"admin_username = {credentials.user}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # A password check is a deliberately slow hash; without MLflow's credential cache
        # every logged metric pays one (the scale-out test's two tune workers: 44 s of server
        # CPU, AMD EPYC). A changed password or removed user takes effect within a minute.
        "auth_cache_ttl_seconds = 60\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": credentials.password,  # used when the admin is created
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),  # one for both workers
        # No MLflow jobs (GenAI judges) run here: no job consumer process beside the server.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"]
    command += ["--backend-store-uri", backend_store_uri]
    command += ["--artifacts-destination", str(artifacts_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    url = f"http://127.0.0.1:{port}"
    with background(command, f"{url}/health", log_path, env=env):
        yield url


@contextmanager
def prefect_server(
    home: Path, log_path: Path, credentials: Credentials, port: int | None = None
) -> Iterator[str]:
    """`prefect server start` with its database in `home`, answering only requests that carry
    `credentials`; yields the API URL."""
    port = port or free_port()
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_AUTH_STRING": f"{credentials.user}:{credentials.password}",
    }
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
