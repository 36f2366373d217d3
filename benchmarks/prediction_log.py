"""What the prediction log costs a served model (a script, not a test).

    python benchmarks/prediction_log.py --model models:/fer-attention-cnn@champion

Starts `mlflow models serve` on the project's registry with the log off, on, and on with faces
kept, in turn (`--rounds` times each, interleaved, so a noisy neighbour hits all three), runs
benchmarks/serving.py's measurements against each (one image p50/p95, a batch of 64, four
clients), then reports the overhead against the log off and the log's bytes per 1,000 answers.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from serving import latencies, png_rows, post

from ferops.prediction_log.store import log_files, read_log

MODES = {
    "off": {"FEROPS_PREDICTION_LOG": ""},
    "on": {"FEROPS_PREDICTION_LOG_FACES": "0"},
    "on, faces kept": {"FEROPS_PREDICTION_LOG_FACES": "1"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(model: str, env: dict[str, str], port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", model, "--env-manager", "local", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"the server for {model} exited") from None
            time.sleep(1)
    raise SystemExit("the server did not answer in 180 s")


def measure(url: str, rows: list[list[str]], requests: int) -> dict[str, float]:
    from concurrent.futures import ThreadPoolExecutor

    post(url, rows[:8])  # warm-up
    single, _ = latencies(url, rows, 1, requests)
    batch, _ = latencies(url, rows, 64, max(requests // 10, 20))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: post(url, [rows[i % len(rows)]]), range(requests)))
    return {
        "one p50": float(np.percentile(single, 50)),
        "one p95": float(np.percentile(single, 95)),
        "64 p50": float(np.percentile(batch, 50)),
        "64 p95": float(np.percentile(batch, 95)),
        "requests/s": requests / (time.perf_counter() - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="models:/fer-attention-cnn@champion")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path('mlflow.db').resolve()}")
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    rows = png_rows(256)
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    sizes: dict[str, list[float]] = {mode: [] for mode in MODES if mode != "off"}
    for _ in range(args.rounds):
        for mode, settings in MODES.items():
            with tempfile.TemporaryDirectory() as folder:
                env = {"FEROPS_PREDICTION_LOG": folder, **settings}
                port = free_port()
                server = serve(args.model, env, port)
                try:
                    results[mode].append(
                        measure(f"http://127.0.0.1:{port}/invocations", rows, args.requests)
                    )
                finally:
                    os.killpg(server.pid, signal.SIGTERM)
                    server.wait(timeout=60)
                if mode != "off":
                    answers = len(read_log(Path(folder)))
                    size = sum(p.stat().st_size for p in log_files(Path(folder)))
                    sizes[mode].append(size / answers * 1000)
    print(f"{args.rounds} round(s) of {args.requests} requests; medians over the rounds")
    print(f"{'log':16}" + "".join(f"{key:>12}" for key in results["off"][0]))
    base = {key: np.median([r[key] for r in results["off"]]) for key in results["off"][0]}
    for mode, runs in results.items():
        figures = {key: np.median([r[key] for r in runs]) for key in runs[0]}
        print(f"{mode:16}" + "".join(f"{value:12.2f}" for value in figures.values()))
        if mode != "off":
            change = [100 * (figures[k] / base[k] - 1) for k in figures]
            print(f"{'  change %':16}" + "".join(f"{value:+12.1f}" for value in change))
    for mode, per_thousand in sizes.items():
        print(f"log {mode}: {np.median(per_thousand) / 1024:.1f} KiB per 1,000 answers")


if __name__ == "__main__":
    main()
