"""What a model is, as plain data: the config layer and Optuna use it without importing Keras."""

from __future__ import annotations

from dataclasses import dataclass

# Names the builders (ferops.models.builders.MODEL_BUILDERS) and the attention blocks
# (ferops.models.attention) implement; a test checks the two stay in step.
MODEL_VARIANTS: tuple[str, ...] = (
    "paper_cnn",
    "attention_cnn",
    "res_attention_cnn",
    "vgg_attention_cnn",
)
ATTENTION_KINDS: tuple[str, ...] = ("none", "spatial", "cbam")
# Which stages close with an attention block: every one, the second half, or the last only.
ATTENTION_STAGES: tuple[str, ...] = ("all", "late", "last")
FACE_SIZE = 48  # every model's input: a 48x48 grey face


@dataclass(frozen=True)
class ModelSpec:
    """What to build. Fields a variant does not use are ignored by it."""

    variant: str = "attention_cnn"
    attention: str = "spatial"
    width: int = 16
    depth: int = 3
    blocks: int = 1  # residual blocks (res_attention_cnn) or conv layers (vgg) per stage
    dropout: float = 0.3
    layer_augment: float = 0.3  # strength of the augmentation layers in the model; 0: none
    stem_pool: bool = True  # res_attention_cnn: pool 48->24 after the stem (False: full size)
    jitter: float = 0.0  # strength of the in-model FaceJitter (shift, flip, erasing); 0 = off
    # FaceJitter's random crop: train on a crop x crop window scaled back to 48x48
    # (FACE_SIZE: no crop); evaluate then adds ten-crop test-time augmentation
    crop: int = FACE_SIZE
    attention_stages: str = "all"  # ATTENTION_STAGES: where the attention blocks sit

    def has_attention(self, stage: int) -> bool:
        """Whether stage `stage` (0-based, of `depth`) closes with an attention block."""
        first = {"all": 0, "late": self.depth // 2, "last": self.depth - 1}[self.attention_stages]
        return self.attention != "none" and stage >= first
