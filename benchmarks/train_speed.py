"""Training throughput of each model variant on this CPU (a script, not a test).

    python benchmarks/train_speed.py [--images 2048] [--epochs 2] [--batch 64]
    python benchmarks/train_speed.py --only "res cbam w32 d4" --batch 128 \
        --precision float32 mixed_bfloat16 auto     # is bfloat16 faster on this CPU?

Fits every variant (at every precision asked) on the same synthetic faces after one warm-up
epoch and prints images per second, seconds per FER2013 epoch (28,709 images) and the speed-up
over the first row.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from ferops.data.synthetic import balanced_labels, generate_faces
from ferops.kernel.config import PRECISIONS, TrainConfig
from ferops.kernel.model_spec import ModelSpec
from ferops.models.builders import build_model
from ferops.models.precision import dtype_policy
from ferops.training.fit import compile_model

FER2013_TRAIN = 28_709

VARIANTS = {
    "paper_cnn": ModelSpec(variant="paper_cnn"),
    "attention none w16 d3": ModelSpec(attention="none"),
    "attention spatial w16 d3": ModelSpec(attention="spatial"),
    "attention cbam w16 d3": ModelSpec(attention="cbam"),
    "attention spatial w24 d3": ModelSpec(attention="spatial", width=24),
    "attention cbam w32 d3": ModelSpec(attention="cbam", width=32),
    "res cbam w32 d4": ModelSpec(  # the FER2013 profile's model (params/fer2013.yaml)
        variant="res_attention_cnn", attention="cbam", width=32, depth=4, layer_augment=0.0
    ),
}


def images_per_second(
    spec: ModelSpec,
    faces: np.ndarray,
    onehot: np.ndarray,
    *,
    epochs: int,
    batch: int,
    precision: str,
) -> tuple[float, int, str]:
    """Images per second, parameters, and the dtype policy `precision` resolved to."""
    keras.utils.set_random_seed(0)
    with dtype_policy(precision) as resolved:
        model = build_model(spec)
    compile_model(model, TrainConfig(), steps=1000)
    model.fit(faces, onehot, batch_size=batch, epochs=1, verbose=0)  # warm-up: tracing, caches
    started = time.perf_counter()
    model.fit(faces, onehot, batch_size=batch, epochs=epochs, verbose=0)
    speed = len(faces) * epochs / (time.perf_counter() - started)
    return speed, model.count_params(), resolved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="variants to time")
    parser.add_argument(
        "--precision", nargs="+", choices=PRECISIONS, default=["float32"], help="dtype policies"
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = balanced_labels(args.images // 7, rng=rng)
    faces = generate_faces(labels, rng=rng)
    onehot = keras.utils.to_categorical(labels, 7)
    rows = []
    for name in args.only or VARIANTS:
        for precision in args.precision:
            speed, params, resolved = images_per_second(
                VARIANTS[name],
                faces,
                onehot,
                epochs=args.epochs,
                batch=args.batch,
                precision=precision,
            )
            shown = f"auto: {resolved}" if precision == "auto" else precision
            rows.append((name, shown, speed, params))
    baseline = rows[0][2]
    print(
        f"{'variant':<26} {'precision':<22} {'params':>9} {'img/s':>7} {'s/FER epoch':>12} "
        f"{'speed-up':>9}"
    )
    for name, precision, speed, params in rows:
        print(
            f"{name:<26} {precision:<22} {params:>9,} {speed:>7.0f} "
            f"{FER2013_TRAIN / speed:>12.0f} {speed / baseline:>8.1f}x"
        )


if __name__ == "__main__":
    main()
