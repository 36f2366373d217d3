"""What a short fit pays before it trains: a search trial on tiny data is mostly tracing.

    python benchmarks/fit_start.py [--epochs 2] [--per-class 12]

Fits small models (width 4, depth 2, as the tests' tiny search does) twice each, in a fresh
model every time: once as `ferops.training.fit.fit` does (optimiser slots and metric totals
built eagerly first), once as plain Keras does after `compile` (it creates them inside the
first traced train step, which TensorFlow then traces a second time). Prints seconds per fit
and how many step functions were traced (the train step and the validation step once each;
plain Keras traces the train step twice).
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from tensorflow.python.eager.polymorphic_function import tracing_compilation

from ferops.data.synthetic import balanced_labels, generate_faces
from ferops.kernel.config import TrainConfig
from ferops.kernel.emotions import NUM_CLASSES
from ferops.kernel.model_spec import ModelSpec
from ferops.models.builders import build_model
from ferops.training.fit import build_training_state, compile_model

TRACED: list[str] = []
_create = tracing_compilation._create_concrete_function


def _counting(function_type, type_context, func_graph, tracing_options):  # type: ignore[no-untyped-def]
    TRACED.append(tracing_options.name)
    return _create(function_type, type_context, func_graph, tracing_options)


def one_fit(
    spec: ModelSpec, faces, onehot, val, *, epochs: int, eager_state: bool
) -> tuple[float, int]:
    """Seconds for build, compile and fit, and the train step's traces."""
    keras.utils.set_random_seed(0)
    TRACED.clear()
    started = time.perf_counter()
    model = build_model(spec)
    compile_model(model, TrainConfig(batch_size=16), steps=epochs * int(np.ceil(len(faces) / 16)))
    if eager_state:
        build_training_state(model, val[0][:1], val[1][:1])
    model.fit(faces, onehot, batch_size=16, epochs=epochs, validation_data=val, verbose=0)
    return time.perf_counter() - started, TRACED.count("one_step_on_data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=12)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = balanced_labels(args.per_class, rng=rng)
    faces = generate_faces(labels, rng=rng)
    onehot = keras.utils.to_categorical(labels, NUM_CLASSES)
    val_labels = balanced_labels(4, rng=rng)
    val = (generate_faces(val_labels, rng=rng), keras.utils.to_categorical(val_labels, NUM_CLASSES))
    tracing_compilation._create_concrete_function = _counting
    one_fit(ModelSpec(width=4, depth=2), faces, onehot, val, epochs=1, eager_state=True)  # warm-up
    print(f"{'attention':<10} {'fit (ferops)':>13} {'traces':>7} {'plain Keras':>12} {'traces':>7}")
    for attention in ("none", "spatial", "cbam"):
        spec = ModelSpec(attention=attention, width=4, depth=2)
        ours = one_fit(spec, faces, onehot, val, epochs=args.epochs, eager_state=True)
        plain = one_fit(spec, faces, onehot, val, epochs=args.epochs, eager_state=False)
        print(f"{attention:<10} {ours[0]:>12.2f}s {ours[1]:>7} {plain[0]:>11.2f}s {plain[1]:>7}")


if __name__ == "__main__":
    main()
