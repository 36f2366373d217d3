"""params.yaml → typed, validated settings. No other module reads params.yaml.

Every check names the dotted key that is wrong, so a typo fails before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from ferops.errors import ConfigError

DataSource = Literal["synthetic", "fer2013-csv", "image-folder"]
Contrast = Literal["none", "equalize", "clahe"]
OnBadImage = Literal["error", "skip"]
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SyntheticConfig:
    """How many generated faces per class and split, and how hard they are."""

    train_per_class: int = 400
    val_per_class: int = 100
    test_per_class: int = 100
    difficulty: float = 1.0


@dataclass(frozen=True)
class DataConfig:
    source: DataSource = "synthetic"
    path: Path = Path("data/raw")
    val_fraction: float = 0.1
    on_bad_image: OnBadImage = "error"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class PreprocessConfig:
    contrast: Contrast = "none"
    clahe_clip: float = 2.0
    min_std: float = 2.0


@dataclass(frozen=True)
class ValidateConfig:
    min_std: float = 1.0
    min_split_size: dict[str, int] = field(
        default_factory=lambda: {"train": 100, "val": 20, "test": 20}
    )


@dataclass(frozen=True)
class Params:
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)


def load_params(path: Path = Path("params.yaml")) -> Params:
    """Read and validate params.yaml; a missing file or a bad key raises ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_params(raw, origin=str(path))


def parse_params(raw: dict[str, Any], *, origin: str = "params") -> Params:
    """Build Params from a plain dict (as read from YAML), checking every value."""
    reader = _Reader(raw, origin)
    synthetic = SyntheticConfig(
        train_per_class=reader.integer("data.synthetic.train_per_class", 400, minimum=1),
        val_per_class=reader.integer("data.synthetic.val_per_class", 100, minimum=1),
        test_per_class=reader.integer("data.synthetic.test_per_class", 100, minimum=1),
        difficulty=reader.number("data.synthetic.difficulty", 1.0, minimum=0.0, maximum=2.0),
    )
    data = DataConfig(
        source=reader.choice("data.source", "synthetic", DataSource),
        path=Path(reader.text("data.path", "data/raw")),
        val_fraction=reader.number("data.val_fraction", 0.1, minimum=0.01, maximum=0.5),
        on_bad_image=reader.choice("data.on_bad_image", "error", OnBadImage),
        synthetic=synthetic,
    )
    preprocess = PreprocessConfig(
        contrast=reader.choice("preprocess.contrast", "none", Contrast),
        clahe_clip=reader.number("preprocess.clahe_clip", 2.0, minimum=0.1),
        min_std=reader.number("preprocess.min_std", 2.0, minimum=0.0),
    )
    sizes = reader.mapping("validate.min_split_size", {"train": 100, "val": 20, "test": 20})
    validate = ValidateConfig(
        min_std=reader.number("validate.min_std", 1.0, minimum=0.0),
        min_split_size={
            split: reader.integer(f"validate.min_split_size.{split}", sizes.get(split), minimum=1)
            for split in SPLITS
        },
    )
    return Params(
        seed=reader.integer("seed", 42, minimum=0),
        data=data,
        preprocess=preprocess,
        validate=validate,
    )


class _Reader:
    """Looks up dotted keys in nested dicts and type-checks them, naming the key on failure."""

    def __init__(self, raw: dict[str, Any], origin: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{origin}: expected a mapping at the top level")
        self.raw = raw
        self.origin = origin

    def _get(self, key: str, default: Any) -> Any:
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return default if node is None else node

    def _fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.origin}: {key} must be {expected}, got {value!r}")

    def integer(self, key: str, default: Any, *, minimum: int | None = None) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise self._fail(key, f"an integer >= {minimum}", value)
        return value

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number", value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self._fail(key, f"a number in [{minimum}, {maximum}]", value)
        return float(value)

    def text(self, key: str, default: str) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a non-empty string", value)
        return value

    def choice(self, key: str, default: str, options: Any) -> Any:
        allowed = get_args(options)
        value = self._get(key, default)
        if value not in allowed:
            raise self._fail(key, f"one of {', '.join(allowed)}", value)
        return value

    def mapping(self, key: str, default: dict[str, Any]) -> dict[str, Any]:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self._fail(key, "a mapping", value)
        return value
