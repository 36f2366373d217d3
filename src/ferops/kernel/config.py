"""params.yaml → typed, validated settings. No other module reads params.yaml.

Every check names the dotted key that is wrong, so a typo fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from ferops.kernel.errors import ConfigError
from ferops.kernel.files import atomic_path
from ferops.kernel.model_spec import (
    ATTENTION_KINDS,
    ATTENTION_STAGES,
    FACE_SIZE,
    MODEL_VARIANTS,
    ModelSpec,
)

MIN_CROP = 32  # a random crop keeps at least two thirds of the face's side

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


# Keras dtype policies, or auto: mixed_bfloat16 where the hardware computes in bfloat16.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
# adamw: AdamW with cosine decay; sgd: SGD with Nesterov momentum and a step schedule.
OPTIMIZERS = ("adamw", "sgd")
PRUNERS = ("median", "hyperband")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    class_weight: bool = False  # weight classes by inverse frequency (FER2013's disgust)
    patience: int = 4  # early stopping on val accuracy
    use_tuned: bool = True  # take model/optimiser values from reports/tuning/best_params.json
    ema: bool = False  # validate, keep and ship an exponential moving average of the weights
    batch_augment: float = 0.0  # OpenCV augmentation of training batches on CPU threads (0 = off)
    precision: str = "float32"  # mixed_bfloat16, or auto: bfloat16 where the hardware has it
    mixup: float = 0.0  # Beta(alpha, alpha) of mixup on training batches (0 = off; 0.2 is common)
    optimizer: str = "adamw"  # adamw (cosine decay) or sgd (Nesterov momentum, step decay)


@dataclass(frozen=True)
class SearchSpace:
    """Choices (lists) and ranges ([low, high]) Optuna samples from. A dimension left out
    (None) is not searched: trials keep the configured model.* / train.* value."""

    attention: tuple[str, ...] = ("none", "spatial", "cbam")
    width: tuple[int, ...] = (12, 16)
    depth: tuple[int, ...] = (2, 3)
    dropout: tuple[float, float] = (0.1, 0.5)
    learning_rate: tuple[float, float] = (1e-3, 6e-3)  # AdamW's
    label_smoothing: tuple[float, float] = (0.0, 0.1)
    variant: tuple[str, ...] | None = None
    blocks: tuple[int, ...] | None = None
    stem_pool: tuple[bool, ...] | None = None
    jitter: tuple[float, float] | None = None
    crop: tuple[int, ...] | None = None
    attention_stages: tuple[str, ...] | None = None
    optimizer: tuple[str, ...] | None = None
    sgd_learning_rate: tuple[float, float] = (0.01, 0.1)  # SGD's, when it is tried
    weight_decay: tuple[float, float] | None = None


@dataclass(frozen=True)
class TuneConfig:
    n_trials: int = 4
    epochs: int = 4
    storage: str = "sqlite:///optuna.db"
    study_name: str | None = None  # default: derived from data source and search settings
    pruner_startup_trials: int = 1
    pruner_warmup_epochs: int = 2  # median: no pruning before; hyperband: the first rung
    train_fraction: float = 1.0  # trials train on this share of each class (val stays whole)
    # Hyperband: the share the first rung trains on, growing to train_fraction by the last
    # (None: train_fraction from the first epoch)
    min_train_fraction: float | None = None
    pruner: str = "median"  # median, or hyperband (successive halving over epoch rungs)
    max_minutes: float | None = None  # no new trial starts after this long (None: no limit)
    space: SearchSpace = field(default_factory=SearchSpace)


@dataclass(frozen=True)
class RegisterConfig:
    model_name: str = "fer-attention-cnn"
    min_gain: float = 0.0  # accuracy points a new version must add over the champion
    alpha: float = 0.05  # McNemar significance level for promotion

    @property
    def champion_uri(self) -> str:
        """What is served: the registered model's version under the alias `champion`."""
        return alias_uri(self.model_name, CHAMPION)


# Registry aliases: `champion` is served; a version the gate refuses becomes `challenger`.
CHAMPION, CHALLENGER = "champion", "challenger"


def alias_uri(model_name: str, alias: str) -> str:
    return f"models:/{model_name}@{alias}"


@dataclass(frozen=True)
class MonitorConfig:
    """When served answers count as drifted: a statistic drifts when its effect (PSI) is past
    `psi` and its test rejects at `p_value`; either alone misleads (a large window makes any
    difference significant, a small one makes PSI noisy)."""

    window: int = 1000  # answers monitored when no --since/--until/--last is given
    min_answers: int = 200  # fewer answers: the verdict is "too few answers"
    psi: float = 0.2
    p_value: float = 0.01
    accuracy_drop: float = 0.05  # estimated accuracy this far below evaluation's is a reason


@dataclass(frozen=True)
class FeedbackConfig:
    holdout_fraction: float = 0.2  # reviewed faces kept out of training: the production slice


RetrainTrigger = Literal["data", "drift", "either"]


@dataclass(frozen=True)
class RetrainConfig:
    trigger: RetrainTrigger = "data"  # drift: retrain on monitor's drift alone (opt-in)


@dataclass(frozen=True)
class Params:
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)


_DEFAULTS = Params()  # read by _default: built once, not per key


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
    """Build Params from a plain dict (as read from YAML), checking every value; a key that
    no setting has (a typo such as `train.epoch`) is refused, naming the closest real key."""
    reader = _Reader(raw, origin)
    _refuse_unknown_keys(raw, Params(), origin)
    synthetic = SyntheticConfig(
        train_per_class=reader.integer("data.synthetic.train_per_class", minimum=1),
        val_per_class=reader.integer("data.synthetic.val_per_class", minimum=1),
        test_per_class=reader.integer("data.synthetic.test_per_class", minimum=1),
        difficulty=reader.number("data.synthetic.difficulty", minimum=0.0, maximum=2.0),
    )
    data = DataConfig(
        source=reader.choice("data.source", DataSource),
        path=Path(reader.text("data.path")),
        val_fraction=reader.number("data.val_fraction", minimum=0.01, maximum=0.5),
        on_bad_image=reader.choice("data.on_bad_image", OnBadImage),
        synthetic=synthetic,
    )
    preprocess = PreprocessConfig(
        contrast=reader.choice("preprocess.contrast", Contrast),
        clahe_clip=reader.number("preprocess.clahe_clip", minimum=0.1),
        min_std=reader.number("preprocess.min_std", minimum=0.0),
    )
    reader.mapping("validate.min_split_size")  # a mapping, or the per-split reads mislead
    validate = ValidateConfig(
        min_std=reader.number("validate.min_std", minimum=0.0),
        min_split_size={
            split: reader.integer(f"validate.min_split_size.{split}", minimum=1) for split in SPLITS
        },
    )
    return Params(
        seed=reader.integer("seed", minimum=0),
        data=data,
        preprocess=preprocess,
        validate=validate,
        model=_model(reader),
        train=_train(reader),
        tune=_tune(reader),
        register=RegisterConfig(
            model_name=reader.text("register.model_name"),
            min_gain=reader.number("register.min_gain", minimum=0.0, maximum=1.0),
            alpha=reader.number("register.alpha", minimum=1e-6, maximum=1.0),
        ),
        monitor=MonitorConfig(
            window=reader.integer("monitor.window", minimum=1),
            min_answers=reader.integer("monitor.min_answers", minimum=1),
            psi=reader.number("monitor.psi", minimum=0.0),
            p_value=reader.number("monitor.p_value", minimum=1e-12, maximum=1.0),
            accuracy_drop=reader.number("monitor.accuracy_drop", minimum=0.0, maximum=1.0),
        ),
        feedback=FeedbackConfig(
            holdout_fraction=reader.number("feedback.holdout_fraction", minimum=0.0, maximum=0.9)
        ),
        retrain=RetrainConfig(trigger=reader.choice("retrain.trigger", RetrainTrigger)),
    )


def _model(reader: _Reader) -> ModelSpec:
    return ModelSpec(
        variant=reader.choice("model.variant", MODEL_VARIANTS),
        attention=reader.choice("model.attention", ATTENTION_KINDS),
        width=reader.integer("model.width", minimum=4),
        depth=reader.integer("model.depth", minimum=1),
        blocks=reader.integer("model.blocks", minimum=1),
        dropout=reader.number("model.dropout", minimum=0.0, maximum=0.9),
        layer_augment=reader.number("model.layer_augment", minimum=0.0, maximum=3.0),
        stem_pool=reader.boolean("model.stem_pool"),
        jitter=reader.number("model.jitter", minimum=0.0, maximum=2.0),
        crop=_crop(reader, reader.integer("model.crop", minimum=1), "model.crop"),
        attention_stages=reader.choice("model.attention_stages", ATTENTION_STAGES),
    )


def _crop(reader: _Reader, value: int, key: str) -> int:
    """A crop is a window of the 48x48 face, large enough to hold most of it."""
    if not MIN_CROP <= value <= FACE_SIZE:
        raise reader._fail(key, f"an integer in [{MIN_CROP}, {FACE_SIZE}]", value)
    return value


def _train(reader: _Reader) -> TrainConfig:
    return TrainConfig(
        epochs=reader.integer("train.epochs", minimum=1),
        batch_size=reader.integer("train.batch_size", minimum=1),
        learning_rate=reader.number("train.learning_rate", minimum=1e-7, maximum=1.0),
        weight_decay=reader.number("train.weight_decay", minimum=0.0, maximum=1.0),
        label_smoothing=reader.number("train.label_smoothing", minimum=0.0, maximum=0.5),
        class_weight=reader.boolean("train.class_weight"),
        patience=reader.integer("train.patience", minimum=1),
        use_tuned=reader.boolean("train.use_tuned"),
        ema=reader.boolean("train.ema"),
        batch_augment=reader.number("train.batch_augment", minimum=0.0, maximum=2.0),
        precision=reader.choice("train.precision", PRECISIONS),
        mixup=reader.number("train.mixup", minimum=0.0, maximum=10.0),
        optimizer=reader.choice("train.optimizer", OPTIMIZERS),
    )


def _tune(reader: _Reader) -> TuneConfig:
    space = SearchSpace(
        attention=reader.choices("tune.space.attention", allowed=ATTENTION_KINDS),
        width=tuple(reader.choices("tune.space.width", kind=int)),
        depth=tuple(reader.choices("tune.space.depth", kind=int)),
        dropout=reader.interval("tune.space.dropout", minimum=0.0, maximum=0.9),
        learning_rate=reader.interval("tune.space.learning_rate", minimum=1e-7, maximum=1.0),
        label_smoothing=reader.interval("tune.space.label_smoothing", minimum=0.0, maximum=0.5),
        variant=reader.optional(
            "tune.space.variant", lambda key: reader.choices(key, allowed=MODEL_VARIANTS)
        ),
        blocks=reader.optional("tune.space.blocks", lambda key: reader.choices(key, kind=int)),
        stem_pool=reader.optional(
            "tune.space.stem_pool", lambda key: reader.choices(key, kind=bool)
        ),
        jitter=reader.optional(
            "tune.space.jitter",
            lambda key: reader.interval(key, minimum=0.0, maximum=2.0),
        ),
        crop=reader.optional(
            "tune.space.crop",
            lambda key: tuple(_crop(reader, c, key) for c in reader.choices(key, kind=int)),
        ),
        attention_stages=reader.optional(
            "tune.space.attention_stages",
            lambda key: reader.choices(key, allowed=ATTENTION_STAGES),
        ),
        optimizer=reader.optional(
            "tune.space.optimizer", lambda key: reader.choices(key, allowed=OPTIMIZERS)
        ),
        sgd_learning_rate=reader.interval(
            "tune.space.sgd_learning_rate", minimum=1e-7, maximum=1.0
        ),
        weight_decay=reader.optional(
            "tune.space.weight_decay",
            lambda key: reader.interval(key, minimum=0.0, maximum=1.0),
        ),
    )
    study_name = reader._get("tune.study_name")
    if study_name is not None and (not isinstance(study_name, str) or not study_name):
        raise reader._fail("tune.study_name", "a non-empty string or null", study_name)
    train_fraction = reader.number("tune.train_fraction", minimum=0.01, maximum=1.0)
    pruner = reader.choice("tune.pruner", PRUNERS)
    min_train_fraction = reader.optional(
        "tune.min_train_fraction",
        lambda key: reader.number(key, minimum=0.01, maximum=train_fraction),
    )
    if min_train_fraction is not None and pruner != "hyperband":
        raise ConfigError(
            f"{reader.origin}: tune.min_train_fraction grows the training share rung by rung "
            f"and needs tune.pruner: hyperband (got {pruner})"
        )
    return TuneConfig(
        n_trials=reader.integer("tune.n_trials", minimum=1),
        epochs=reader.integer("tune.epochs", minimum=1),
        train_fraction=train_fraction,
        min_train_fraction=min_train_fraction,
        storage=reader.text("tune.storage"),
        study_name=study_name,
        pruner_startup_trials=reader.integer("tune.pruner_startup_trials", minimum=0),
        pruner_warmup_epochs=reader.integer("tune.pruner_warmup_epochs", minimum=0),
        pruner=pruner,
        max_minutes=reader.optional(
            "tune.max_minutes", lambda key: reader.number(key, minimum=0.1)
        ),
        space=space,
    )


def apply_profile(params_path: Path, profile_path: Path, out_path: Path | None = None) -> list[str]:
    """Overlay a profile (params/*.yaml: only the keys that differ) on params.yaml and write
    the result to `out_path` (default: params.yaml itself), keeping params.yaml's comments.

    The profile's keys are checked before anything is written (an unknown one is named with
    its closest real key), and so is the merged result. Returns the dotted keys it set.
    """
    if not profile_path.is_file():
        raise ConfigError(f"{profile_path}: profile not found")
    overlay = yaml.safe_load(profile_path.read_text()) or {}
    if not isinstance(overlay, dict):
        raise ConfigError(f"{profile_path}: expected a mapping at the top level")
    _refuse_unknown_keys(overlay, Params(), str(profile_path))
    # Deferred on purpose: only `ferops profile` needs comment-keeping YAML (and a GPU machine
    # running the other commands may not have it).
    from ruamel.yaml import YAML

    round_trip = YAML()
    base = round_trip.load(params_path.read_text()) if params_path.is_file() else {}
    changed = _overlay(base, overlay)
    text = io.StringIO()
    round_trip.dump(base, text)
    parse_params(yaml.safe_load(text.getvalue()) or {}, origin=f"{params_path} + {profile_path}")
    with atomic_path(out_path or params_path) as staged:
        staged.write_text(text.getvalue())
    return changed


def _overlay(base: Any, overlay: dict[str, Any], prefix: str = "") -> list[str]:
    """Set every leaf of `overlay` in `base` (in place); mappings merge, anything else replaces."""
    changed = []
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            changed += _overlay(base[key], value, f"{prefix}{key}.")
        else:
            base[key] = value
            changed.append(f"{prefix}{key}")
    return changed


# Keys renamed since a params file may have been written: the old name is refused with the new.
# The augmentation knobs are named after where they act.
RENAMED = {
    "model.augment": "model.layer_augment",  # Keras augmentation layers inside the model
    "train.augment": "train.batch_augment",  # OpenCV augmentation of batches before the model
}


def _refuse_unknown_keys(raw: Any, settings: Any, origin: str, prefix: str = "") -> None:
    """Walk `raw` along the dataclass tree of `settings`; raise on the first key it lacks."""
    if not isinstance(raw, dict):
        return  # a value where a section belongs: the typed reader names it
    known = (
        {f.name for f in dataclasses.fields(settings)}
        if dataclasses.is_dataclass(settings)
        else set(settings)
    )
    for key, value in raw.items():
        if (new := RENAMED.get(f"{prefix}{key}")) is not None:
            raise ConfigError(f"{origin}: {prefix}{key} is now {new} (same meaning): rename it")
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            raise ConfigError(f"{origin}: unknown key {prefix}{key}{hint}")
        child = getattr(settings, key) if dataclasses.is_dataclass(settings) else None
        if dataclasses.is_dataclass(child) or isinstance(child, dict):
            _refuse_unknown_keys(value, child, origin, f"{prefix}{key}.")


class _Reader:
    """Looks up dotted keys in nested dicts and type-checks them, naming the key on failure."""

    def __init__(self, raw: dict[str, Any], origin: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{origin}: expected a mapping at the top level")
        self.raw = raw
        self.origin = origin

    def _get(self, key: str) -> Any:
        """The value at dotted `key`, or the default the Params dataclasses give it."""
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return _default(key)
            node = node[part]
        return _default(key) if node is None else node

    def _fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.origin}: {key} must be {expected}, got {value!r}")

    def integer(self, key: str, *, minimum: int | None = None) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise self._fail(key, f"an integer >= {minimum}", value)
        return value

    def number(
        self,
        key: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number", value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self._fail(key, f"a number in [{minimum}, {maximum}]", value)
        return float(value)

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a non-empty string", value)
        return value

    def choice(self, key: str, options: Any) -> Any:
        allowed = options if isinstance(options, tuple) else get_args(options)
        value = self._get(key)
        if value not in allowed:
            raise self._fail(key, f"one of {', '.join(allowed)}", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false", value)
        return value

    def choices(
        self, key: str, *, allowed: tuple[Any, ...] = (), kind: type = str
    ) -> tuple[Any, ...]:
        """A non-empty list for a categorical search dimension."""
        value = self._get(key)
        if not isinstance(value, list) or not value:
            raise self._fail(key, "a non-empty list (the search space may not be empty)", value)
        for item in value:
            if (isinstance(item, bool) and kind is not bool) or not isinstance(item, kind):
                raise self._fail(key, f"a list of {kind.__name__}", value)
            if allowed and item not in allowed:
                raise self._fail(key, f"a list drawn from {', '.join(allowed)}", value)
            if kind is int and item < 1:
                raise self._fail(key, "a list of positive integers", value)
        return tuple(value)

    def interval(self, key: str, *, minimum: float, maximum: float) -> tuple[float, float]:
        """A [low, high] range for a continuous search dimension."""
        value = self._get(key)
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        )
        if not ok or not (minimum <= value[0] <= value[1] <= maximum):
            raise self._fail(key, f"[low, high] with {minimum} <= low <= high <= {maximum}", value)
        return float(value[0]), float(value[1])

    def optional(self, key: str, read: Any) -> Any:
        """None when `key` is absent or null, else what `read(key)` makes of it."""
        return None if self._get(key) is None else read(key)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._fail(key, "a mapping", value)
        return value


def _default(key: str) -> Any:
    """The default of dotted `key`, from the dataclasses above: the one place defaults live
    (tuples come back as lists and paths as strings, as YAML would give them)."""
    node: Any = _DEFAULTS
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    if isinstance(node, tuple):
        return list(node)
    return str(node) if isinstance(node, Path) else node
