"""ferops: reproducible facial-emotion-recognition pipelines, tracked and served.

    from ferops import EmotionRecognizer     # the Python API (ferops.api)

Nothing is imported until asked for, so that a pipeline stage depends on (and reruns for)
only the code it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "EmotionRecognizer":  # loaded on first use: ferops.api imports the inference
        return importlib.import_module("ferops.api").EmotionRecognizer
    raise AttributeError(f"module 'ferops' has no attribute {name!r}")
