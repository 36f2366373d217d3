"""Training throughput of each model variant on this CPU (a script, not a test).

    python benchmarks/train_speed.py [--images 2048] [--epochs 2]

Fits every variant on the same synthetic faces after one warm-up epoch and prints images per
second, seconds per FER2013 epoch (28,709 images) and the speed-up over `paper_cnn`.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from ferops.config import TrainConfig
from ferops.data.synthetic import balanced_labels, generate_faces
from ferops.models.registry import build_model
from ferops.models.spec import ModelSpec
from ferops.train import compile_model

FER2013_TRAIN = 28_709

VARIANTS = {
    "paper_cnn": ModelSpec(variant="paper_cnn"),
    "attention none w16 d3": ModelSpec(attention="none"),
    "attention spatial w16 d3": ModelSpec(attention="spatial"),
    "attention cbam w16 d3": ModelSpec(attention="cbam"),
    "attention spatial w24 d3": ModelSpec(attention="spatial", width=24),
    "attention cbam w32 d3": ModelSpec(attention="cbam", width=32),
}


def images_per_second(spec: ModelSpec, faces: np.ndarray, onehot: np.ndarray, epochs: int):
    keras.utils.set_random_seed(0)
    model = build_model(spec)
    compile_model(model, TrainConfig(), steps=1000)
    model.fit(faces, onehot, batch_size=64, epochs=1, verbose=0)  # warm-up: tracing, caches
    started = time.perf_counter()
    model.fit(faces, onehot, batch_size=64, epochs=epochs, verbose=0)
    return len(faces) * epochs / (time.perf_counter() - started), model.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = balanced_labels(args.images // 7, rng=rng)
    faces = generate_faces(labels, rng=rng)
    onehot = keras.utils.to_categorical(labels, 7)
    rows = [
        (name, *images_per_second(spec, faces, onehot, args.epochs))
        for name, spec in VARIANTS.items()
    ]
    baseline = rows[0][1]
    print(f"{'variant':<26} {'params':>9} {'img/s':>7} {'s/FER epoch':>12} {'speed-up':>9}")
    for name, speed, params in rows:
        print(
            f"{name:<26} {params:>9,} {speed:>7.0f} {FER2013_TRAIN / speed:>12.0f} "
            f"{speed / baseline:>8.1f}x"
        )


if __name__ == "__main__":
    main()
