"""The seven FER2013 emotions, in the data set's label order, and the names people use for them."""

from __future__ import annotations

from typing import Any

import numpy as np

from ferops.kernel.errors import DataError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)


def answer_columns(probabilities: np.ndarray, dtype: Any = np.float32) -> dict[str, Any]:
    """A model's answers as columns, one row per face: `emotion`, `confidence` and the seven
    `p_<emotion>` (the served table, the prediction log and the evaluation reference alike)."""
    values = np.asarray(probabilities).astype(dtype)
    return {
        "emotion": np.asarray(EMOTIONS, dtype=object)[values.argmax(axis=1)],
        "confidence": values.max(axis=1),
        **{f"p_{e}": values[:, i] for i, e in enumerate(EMOTIONS)},
    }


# Folder names seen in public FER data sets (FER2013, FER+, RAF-DB, AffectNet exports).
_SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "neutrality": "neutral",
    "calm": "neutral",
}


def emotion_label(name: str, *, where: str) -> int:
    """Return the FER2013 label for an emotion name, accepting common synonyms in any case."""
    key = name.strip().lower()
    key = _SYNONYMS.get(key, key)
    if key not in EMOTIONS:
        raise DataError(
            f"{where}: unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)} "
            f"(or a synonym: {', '.join(sorted(_SYNONYMS))})"
        )
    return EMOTIONS.index(key)
