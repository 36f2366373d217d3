"""Cold start of `ferops predict --whole --model model.onnx face.png`: a fresh process each
time, as a shell user runs it. Imports are most of it, so this is what layering buys.

    python benchmarks/cold_start.py                       # this checkout
    python benchmarks/cold_start.py --src /tmp/old/src    # another checkout (e.g. before)

The ONNX file is the shipped model, exported once (with its contrast sidecar) into a temporary
folder; the photo is a synthetic face. Prints the median and the spread of --runs runs and
which heavy modules the process imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import sys, runpy; sys.argv = ['ferops'] + sys.argv[1:]; "
    "import atexit; atexit.register(lambda: print('heavy:', sorted(m for m in "
    "('tensorflow', 'keras', 'sklearn', 'mlflow') if m in sys.modules), file=sys.stderr)); "
    "from ferops.cli import app; app()"
)


def prepare(work: Path) -> tuple[Path, Path]:
    """The shipped model as ONNX, and one synthetic face as a PNG."""
    import numpy as np

    from ferops.data.synthetic import balanced_labels, generate_faces
    from ferops.inference.export import export_model
    from ferops.inference.runtime import load_keras
    from ferops.models.shipped import ACCURATE

    labels = balanced_labels(2, rng=np.random.default_rng(0))
    faces = generate_faces(labels, rng=np.random.default_rng(0), difficulty=1.0)
    onnx = work / "model.onnx"
    export_model(load_keras(ACCURATE.verified()), "onnx", onnx, faces, ACCURATE.preprocessing())
    face = work / "face.png"
    cv2.imwrite(str(face), cv2.resize(faces[0], (96, 96)))
    return onnx, face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the ferops to time")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferops-cold-"))
    onnx, face = prepare(work)
    env = {**os.environ, "PYTHONPATH": str(args.src), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", PROBE, "predict", "--whole", "--model", str(onnx), str(face)]
    seconds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(done.stderr)
    heavy = [line for line in done.stderr.splitlines() if line.startswith("heavy:")]
    print(f"ferops from {args.src}")
    print(
        f"  cold start, median of {args.runs}: {statistics.median(seconds):.2f} s "
        f"(min {min(seconds):.2f}, max {max(seconds):.2f})"
    )
    print(f"  {heavy[-1] if heavy else 'heavy: ?'}")
    print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
