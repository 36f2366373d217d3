"""The seven FER2013 emotions, in the data set's label order, and the names people use for them."""

from __future__ import annotations

from ferops.kernel.errors import DataError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)

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
