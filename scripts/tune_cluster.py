"""A tuning cluster on one machine: PostgreSQL, an MLflow server, a Prefect server, N workers.

    python scripts/tune_cluster.py --workers 2 --trials 12      # run a study, then stop all
    python scripts/tune_cluster.py --workers 0 --state .cluster  # servers only, until Ctrl-C

Everything listens on 127.0.0.1 and asks for a password: PostgreSQL (scram-sha-256), MLflow
(basic-auth app) and Prefect (server auth string) share one generated account, kept in
STATE/password; STATE/client.env holds the exports a worker needs (`set -a; . client.env`).
The servers' state (PostgreSQL cluster, MLflow artifacts and users, Prefect database, logs)
lives in --state; without it, in a temporary folder removed at the end. Workers on other
machines join the same study with those settings (see docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import optuna

from ferops.kernel.config import load_params
from ferops.ops.services import (
    Credentials,
    client_environment,
    local_postgres,
    mlflow_server,
    prefect_server,
    stop_group,
    write_secret,
)
from ferops.training.search.reports import write_tuning_reports
from ferops.training.search.space import default_study_name


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path(), help="project root")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: servers only)")
    parser.add_argument("--trials", type=int, default=None, help="trials the study should hold")
    parser.add_argument("--study", default=None, help="study name (default: from params.yaml)")
    parser.add_argument("--state", type=Path, default=None, help="keep server state here")
    parser.add_argument(
        "--reports", type=Path, default=None, help="write the study's reports here at the end"
    )
    args = parser.parse_args()

    root = args.root.resolve()
    params = load_params(root / "params.yaml")
    study = args.study or params.tune.study_name or default_study_name(params)
    trials = args.trials or params.tune.n_trials
    keep = args.state is not None
    state = args.state.resolve() if keep else Path(tempfile.mkdtemp(prefix="ferops-cluster-"))
    logs = state / "logs"
    credentials = Credentials.kept_in(state / "password")

    with ExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, state, ignore_errors=True)
        postgres = stack.enter_context(
            local_postgres(
                ["optuna", "mlflow"], credentials, data_dir=state / "postgres" if keep else None
            )
        )
        tracking = stack.enter_context(
            mlflow_server(
                f"{postgres}/mlflow", state / "mlartifacts", logs / "mlflow.log", credentials
            )
        )
        prefect_api = stack.enter_context(
            prefect_server(state / "prefect", logs / "prefect.log", credentials)
        )
        storage = f"{postgres}/optuna"
        env = {
            "MLFLOW_TRACKING_URI": tracking,
            "PREFECT_API_URL": prefect_api,
            "FEROPS_OPTUNA_STORAGE": storage,
            **client_environment(credentials),
        }
        client_env = state / "client.env"
        write_secret(client_env, "".join(f"{key}={value}\n" for key, value in env.items()))
        hidden = storage.replace(f":{credentials.password}@", ":***@")
        print(f"Optuna storage   {hidden}  (study {study}, {trials} trials)")
        print(f"MLflow tracking  {tracking}  (UI at the same address, user {credentials.user})")
        print(f"Prefect API      {prefect_api}  (UI at {prefect_api.removesuffix('/api')})")
        print(f"credentials      {client_env}  (password in {state / 'password'})")
        print(f"logs             {logs}", flush=True)
        if args.workers == 0:
            print("servers only; Ctrl-C stops them")
            _wait_for_interrupt()
            return 0

        command = [str(Path(sys.executable).parent / "ferops"), "tune-worker", "--root", str(root)]
        command += ["--study", study, "--trials", str(trials)]  # storage: from env
        started = time.perf_counter()
        workers = [
            _start_worker(command, env, logs / f"worker-{i}.log") for i in range(args.workers)
        ]
        try:
            codes = [worker.wait() for worker in workers]
        except KeyboardInterrupt:
            print("stopping workers: their running trials are marked failed")
            for worker in workers:
                worker.send_signal(signal.SIGINT)
            for worker in workers:
                stop_group(worker, grace=60)
            return 130
        hours = (time.perf_counter() - started) / 3600
        finished = optuna.load_study(study_name=study, storage=storage).trials
        by_worker = Counter(t.user_attrs.get("worker", "?") for t in finished)
        states = Counter(t.state.name for t in finished)
        print(f"study {study}: {len(finished)} trials {dict(states)} in {hours * 60:.1f} min")
        print(f"{len(finished) / hours:.1f} trials/hour with {args.workers} worker(s): {by_worker}")
        if args.reports:
            study_obj = optuna.load_study(study_name=study, storage=storage)
            write_tuning_reports(study_obj, args.reports, storage, seconds=hours * 3600)
        if any(codes):
            print(f"worker exit codes {codes}; see {logs}", file=sys.stderr)
            return 1
    return 0


def _start_worker(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
