"""Training runs on tiny data where numerics are the point: one seed gives one result across
processes, a mixed-precision model keeps its policy and trains, and the full-resolution
variants train a step on oneDNN. (Moved from the unit tier: each trains a model.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from ferops.kernel.config import TrainConfig
from ferops.kernel.model_spec import ModelSpec
from ferops.models.builders import build_model
from ferops.models.precision import dtype_policy
from ferops.training.fit import fit
from tests.helpers import noise_faces, tiny_params_file

FACES = noise_faces(2)


SEEDED_RUN = """
import json, sys
from pathlib import Path
from ferops.data.sources import synthetic_faceset
from ferops.kernel.config import load_params
from ferops.models.builders import build_model
from ferops.training.fit import fit, seed_everything

params = load_params(Path(sys.argv[1]))
faceset = synthetic_faceset(params.data, seed=params.seed)
seed_everything(7)
history = fit(build_model(params.model, seed=7), faceset, params.train, epochs=2, callbacks=[])
print(json.dumps([history["val_accuracy"].round(3).tolist(), history["loss"].round(4).tolist()]))
"""


def test_the_same_seed_gives_the_same_validation_accuracy(tmp_path):
    """Two training runs with one seed, each in a fresh process (as each stage is), agree to
    the last printed digit. (In one long-lived pytest worker, after other tests, one run in
    a later epoch once differed, and could not be reproduced in isolation: see the note.)"""
    path = tiny_params_file(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", SEEDED_RUN, str(path)],
            capture_output=True, text=True, check=True, env=env,
        ).stdout.strip().splitlines()[-1]
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0] == runs[1]
    accuracies, losses = json.loads(runs[0])
    assert len(accuracies) == len(losses) == 2


def test_a_model_keeps_its_policy_and_the_global_one_is_restored(tiny_faceset):
    before = keras.mixed_precision.global_policy().name
    with dtype_policy("mixed_bfloat16") as resolved:
        model = build_model(ModelSpec(attention="cbam", width=4, depth=2), seed=0)
    assert resolved == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)

    history = fit(model, tiny_faceset, TrainConfig(batch_size=32), epochs=1, callbacks=[])
    assert np.isfinite(history["loss"].iloc[-1])
    probabilities = model.predict(tiny_faceset["val"].x, verbose=0)
    assert probabilities.dtype == np.float32  # the softmax stays in float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)

    with pytest.raises(RuntimeError), dtype_policy("mixed_bfloat16"):
        raise RuntimeError("a failed build")
    assert keras.mixed_precision.global_policy().name == before


@pytest.mark.parametrize("variant", ["res_attention_cnn", "vgg_attention_cnn"])
def test_full_resolution_variants_train_a_step_without_crashing(variant):
    """A strided 1x1 projection on a 48x48 map crashed TensorFlow's oneDNN kernels in training
    (segmentation fault); the residual blocks average-pool before projecting instead."""
    model = build_model(ModelSpec(variant=variant, width=4, depth=2, stem_pool=False, jitter=1.0))
    model.compile("adam", "categorical_crossentropy")
    targets = keras.utils.to_categorical([0, 1], 7)
    loss = model.train_on_batch(FACES, targets)
    assert np.isfinite(loss)
