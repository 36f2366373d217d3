"""Mixed precision where the hardware computes in bfloat16, float32 everywhere else.

bfloat16 only pays on units with bfloat16 arithmetic. Training the FER2013 profile's model
(`benchmarks/train_speed.py`) ran 1.8x faster in mixed_bfloat16 than in float32 on a 2-core
CPU with AVX512-BF16, and 5.7x slower on a 2-core CPU with AVX2 only, where it is emulated.
`auto` picks per machine, so one profile suits both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras

CPU_BFLOAT16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bfloat16(cpuinfo: str) -> bool:
    """Whether a Linux /proc/cpuinfo text lists a bfloat16 instruction set."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return bool(CPU_BFLOAT16_FLAGS & set(value.split()))
    return False


def gpu_has_bfloat16() -> bool:
    """Whether the backend sees a GPU with bfloat16 arithmetic (compute capability 8.0+)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            if details.get("compute_capability", (0, 0))[0] >= 8:
                return True
    elif backend == "jax":
        import jax

        for device in jax.devices():
            if device.platform == "gpu" and float(getattr(device, "compute_capability", 0)) >= 8:
                return True
    return False


def native_bfloat16() -> bool:
    """Whether this machine trains faster in bfloat16: a capable GPU, or else the CPU."""
    cpuinfo = Path("/proc/cpuinfo")
    return gpu_has_bfloat16() or (cpuinfo.is_file() and cpu_has_bfloat16(cpuinfo.read_text()))


def resolve(policy: str) -> str:
    """The Keras dtype policy that `policy` (config.PRECISIONS) means on this machine."""
    if policy == "auto":
        return "mixed_bfloat16" if native_bfloat16() else "float32"
    return policy


@contextmanager
def dtype_policy(policy: str) -> Iterator[str]:
    """Build models under `policy`, resolved (their layers keep it for training); Keras' global
    policy is restored on exit, so a model built later in the same process is unaffected."""
    previous = keras.mixed_precision.global_policy()
    resolved = resolve(policy)
    keras.mixed_precision.set_global_policy(resolved)
    try:
        yield resolved
    finally:
        keras.mixed_precision.set_global_policy(previous)
