"""What a model is, as plain data: the config layer and Optuna use it without importing Keras."""

from __future__ import annotations

from dataclasses import dataclass

# Names the registry (ferops.models.registry) and the attention blocks
# (ferops.models.attention) implement; a test checks the two stay in step.
MODEL_VARIANTS: tuple[str, ...] = (
    "paper_cnn",
    "attention_cnn",
    "res_attention_cnn",
    "vgg_attention_cnn",
)
ATTENTION_KINDS: tuple[str, ...] = ("none", "spatial", "cbam")


@dataclass(frozen=True)
class ModelSpec:
    """What to build. Fields a variant does not use are ignored by it."""

    variant: str = "attention_cnn"
    attention: str = "spatial"
    width: int = 16
    depth: int = 3
    blocks: int = 1  # residual blocks (res_attention_cnn) or conv layers (vgg) per stage
    dropout: float = 0.3
    augment: float = 0.3  # strength of training-time augmentation; 0 turns it off
    stem_pool: bool = True  # res_attention_cnn: pool 48->24 after the stem (False: full size)
    jitter: float = 0.0  # strength of the in-model FaceJitter (shift, flip, erasing); 0 = off
