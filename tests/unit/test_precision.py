"""Precision policy: bfloat16 only where the hardware has it, and no policy leaks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ferops.kernel.config import PRECISIONS, TrainConfig
from ferops.kernel.model_spec import ModelSpec
from ferops.models import precision
from ferops.models.builders import build_model
from ferops.models.precision import cpu_has_bfloat16, dtype_policy, resolve
from ferops.training.fit import fit

EPYC_WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 vaes\n"
EPYC_AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\nbugs\t\t: sysret_ss_attrs\n"


def test_cpu_flags_say_whether_bfloat16_is_native():
    assert cpu_has_bfloat16(EPYC_WITH_BF16)
    assert cpu_has_bfloat16("flags\t: sse2 avx2 amx_bf16 amx_tile\n")
    assert not cpu_has_bfloat16(EPYC_AVX2_ONLY)
    assert not cpu_has_bfloat16("processor\t: 0\nFeatures\t: fp asimd\n")  # no flags line


@pytest.mark.parametrize("native, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_picks_bfloat16_only_where_the_hardware_has_it(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "native_bfloat16", lambda: native)
    assert resolve("auto") == expected
    assert resolve("float32") == "float32" and resolve("mixed_bfloat16") == "mixed_bfloat16"
    assert set(PRECISIONS) == {"auto", "float32", "mixed_bfloat16"}


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
