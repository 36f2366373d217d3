"""Latency and throughput of `mlflow models serve` on this machine (a script, not a test).

    make serve &                     # or any running server
    python benchmarks/serving.py --port 5001 [--requests 300]

Measures single-image latency (p50/p95), a batch of 64 images, and requests/second with four
concurrent clients, all with real PNG faces; counts every non-200 answer as an error.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from ferops.data.synthetic import balanced_labels, generate_faces


def png_rows(n: int) -> list[list[str]]:
    rng = np.random.default_rng(0)
    faces = generate_faces(balanced_labels(n // 7 + 1, rng=rng)[:n], rng=rng)
    rows = []
    for face in faces:
        buffer = io.BytesIO()
        Image.fromarray(face).save(buffer, format="PNG")
        rows.append([base64.b64encode(buffer.getvalue()).decode()])
    return rows


def post(url: str, rows: list[list[str]]) -> tuple[int, float]:
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, (time.perf_counter() - started) * 1000


def latencies(url: str, rows: list[list[str]], batch: int, n: int) -> tuple[np.ndarray, int]:
    results = [post(url, rows[(i * batch) % len(rows) :][:batch] or rows[:batch]) for i in range(n)]
    errors = sum(status != 200 for status, _ in results)
    return np.array([ms for _, ms in results]), errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/invocations"
    rows = png_rows(256)
    post(url, rows[:8])  # warm-up

    single, single_errors = latencies(url, rows, 1, args.requests)
    batch, batch_errors = latencies(url, rows, 64, max(args.requests // 10, 20))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(
            pool.map(lambda i: post(url, [rows[i % len(rows)]]), range(args.requests))
        )
    seconds = time.perf_counter() - started
    concurrent_errors = sum(status != 200 for status, _ in concurrent)

    print(
        f"single image   p50 {np.percentile(single, 50):6.1f} ms  "
        f"p95 {np.percentile(single, 95):6.1f} ms  ({len(single)} requests, "
        f"{single_errors} errors)"
    )
    print(
        f"batch of 64    p50 {np.percentile(batch, 50):6.1f} ms  "
        f"p95 {np.percentile(batch, 95):6.1f} ms  ({len(batch)} requests, "
        f"{batch_errors} errors) = {64000 / np.percentile(batch, 50):.0f} images/s"
    )
    print(
        f"4 clients      {len(concurrent) / seconds:6.1f} requests/s over {len(concurrent)} "
        f"requests, {concurrent_errors} errors"
    )


if __name__ == "__main__":
    main()
