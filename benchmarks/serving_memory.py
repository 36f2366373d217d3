"""Does the served model's memory stay bounded under junk and maximum-size requests? (a script,
not a test)

    python benchmarks/serving_memory.py [--model models:/fer-attention-cnn@champion]

Starts `mlflow models serve` on the project's store (MLFLOW_TRACKING_URI, else mlflow.db here),
warms it up with real faces, then sends 1,000 junk requests (every kind the server refuses)
and 100 requests at the size limits (two 25-megapixel JPEGs of up to 5 MB each = 50 MP
decoded; six PNGs of about 5 MB each = 30 MB of images), the same 100 as whole photos
(`"params": {"faces": "detect"}`), then ten bodies of 50 and 200 MB.
It reports the resident memory (RSS) of the server's processes after each phase; the target
is at most 1.5x the warm-up figure.
Results also go to benchmarks/results/serving_memory.json.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from ferops.data.synthetic import balanced_labels, generate_faces
from ferops.ops.services import free_port
from ferops.registry.pyfunc import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

RESULTS = Path(__file__).parent / "results" / "serving_memory.json"


def encode(image: Image.Image, fmt: str, **options: object) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return base64.b64encode(buffer.getvalue()).decode()


def faces(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [
        encode(Image.fromarray(face), "PNG")
        for face in generate_faces(balanced_labels(n // 7 + 1, rng=rng)[:n], rng=rng)
    ]


def largest_jpeg() -> str:
    """A 5000x5000 (25 MP) photo-like JPEG just under the 5 MB per-image limit."""
    side = int(MAX_IMAGE_PIXELS**0.5)
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 200, side, dtype=np.float32)
    levels = ramp[None, :] * 0.5 + ramp[:, None] * 0.5 + rng.normal(0, 6, (side, side))
    image = Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8)).convert("RGB")
    for quality in (90, 80, 70, 60, 50):
        text = encode(image, "JPEG", quality=quality)
        if len(text) * 3 // 4 <= MAX_IMAGE_BYTES:
            return text
    raise SystemExit("could not make a JPEG under the per-image limit")


def heaviest_png() -> str:
    """Grey noise as PNG (incompressible): about 5 MB, about 5 megapixels."""
    side = int((MAX_IMAGE_BYTES * 0.97) ** 0.5)
    noise = np.random.default_rng(2).integers(0, 256, (side, side), dtype=np.uint8)
    return encode(Image.fromarray(noise), "PNG")


def junk() -> list[dict]:
    """One request of every kind the server answers with 400."""
    bomb = encode(Image.new("L", (6000, 6000)), "PNG")  # 36 MP: over the per-image limit
    return [
        {"columns": ["image"], "data": [["%%%not base64%%%"]]},
        {"columns": ["image"], "data": [[base64.b64encode(b"hello world").decode()]]},
        {"columns": ["image"], "data": [[""]]},
        {"columns": ["pixels"], "data": [["1 2 3"]]},
        {"columns": ["pixels"], "data": [[" ".join(["nan"] * 2304)]]},
        {"columns": ["image"], "data": [["A" * (MAX_IMAGE_BYTES * 2)]]},
        {"columns": ["image"], "data": [[bomb]]},
        {"columns": ["text"], "data": [["hi"]]},
        {"columns": ["pixels"], "data": [["0"] * 3] * 1025},  # too many rows
    ]


def post(port: int, split: dict, params: dict | None = None) -> int:
    body = {"dataframe_split": split, **({"params": params} if params else {})}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def post_body(port: int, size: int) -> int:
    """POST a JSON body of `size` bytes as a client would: headers, then the body in 1 MB
    pieces. A server that refuses it early may close the connection mid-body; its answer is
    read all the same."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    piece = b'{"dataframe_split": {"columns": ["image"], "data": [["' + b"A" * (1 << 20)
    try:
        sent = 0
        while sent < size:
            chunk = piece[: size - sent]
            connection.send(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        response = connection.getresponse()
        response.read()
        return response.status
    except (ConnectionError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


def tree_rss_mb(pid: int) -> tuple[float, float]:
    """(sum, largest) resident memory in MB over `pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    sizes, todo = [], [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")]
        sizes.append(int(rss[0]) / 1024 if rss else 0.0)
    return sum(sizes), max(sizes, default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models:/fer-attention-cnn@champion")
    parser.add_argument("--junk", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100)
    args = parser.parse_args()

    tracking = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{Path('mlflow.db').resolve()}")
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = ["mlflow", "models", "serve", "-m", args.model, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start: {' '.join(command)}") from None
                time.sleep(1)

        phases: list[dict] = []

        def measure(name: str, requests: list, expected: int) -> None:
            started = time.perf_counter()
            statuses = [
                post_body(port, split)
                if isinstance(split, int)
                else post(port, *split)
                if isinstance(split, tuple)
                else post(port, split)
                for split in requests
            ]
            time.sleep(1)
            total, largest = tree_rss_mb(server.pid)
            wrong = sum(status != expected for status in statuses)
            phases.append(
                {
                    "phase": name,
                    "requests": len(requests),
                    "unexpected_status": wrong,
                    "seconds": round(time.perf_counter() - started, 1),
                    "rss_total_mb": round(total, 1),
                    "rss_largest_mb": round(largest, 1),
                }
            )
            print(
                f"{name:>24}: {len(requests):5d} requests, {wrong} unexpected, "
                f"RSS {total:7.1f} MB (largest process {largest:6.1f} MB)",
                flush=True,
            )

        started_total, started_largest = tree_rss_mb(server.pid)
        print(f"{'started':>24}: RSS {started_total:7.1f} MB (largest {started_largest:.1f} MB)")
        images = faces(64)
        warm = [{"columns": ["image"], "data": [[face] for face in images]}] * 20
        warm += [{"columns": ["image"], "data": [[face]]} for face in images[:30]]
        measure("warm-up (real faces)", warm, 200)
        kinds = junk()
        measure("1,000 junk", [kinds[i % len(kinds)] for i in range(args.junk)], 400)
        jpeg, png = largest_jpeg(), heaviest_png()
        widest = {"columns": ["image"], "data": [[jpeg], [jpeg]]}  # 50 MP decoded
        heaviest = {"columns": ["image"], "data": [[png]] * 6}  # ~30 MB of images
        large = [widest if i % 2 == 0 else heaviest for i in range(args.large)]
        measure("100 maximum-size", large, 200)
        detect = {"faces": "detect"}  # whole photos: BlazeFace over each 25 MP image
        measure("100 maximum-size, detect", [(split, detect) for split in large], 200)
        # Bodies far over the limit (50 and 200 MB): refused (413) before they are read.
        measure("10 bodies of 50/200 MB", [50_000_000, 200_000_000] * 5, 413)
        measure("warm-up again", warm, 200)

        base = phases[0]["rss_largest_mb"]
        ratio = max(p["rss_largest_mb"] for p in phases) / base
        print(f"largest process: at most {ratio:.2f}x its warm-up RSS (target <= 1.5x)")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "cpu": _cpu(),
                    "python": platform.python_version(),
                    "jpeg_bytes": len(jpeg) * 3 // 4,
                    "png_bytes": len(png) * 3 // 4,
                    "phases": phases,
                    "max_over_warm_up": round(ratio, 3),
                },
                indent=2,
            )
            + "\n"
        )
        return 0 if ratio <= 1.5 else 1
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
