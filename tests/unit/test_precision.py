"""Precision policy: bfloat16 only where the hardware has it, and no policy leaks."""

from __future__ import annotations

import pytest

from ferops.kernel.config import PRECISIONS
from ferops.models import precision
from ferops.models.precision import cpu_has_bfloat16, resolve

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
