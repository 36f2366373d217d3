"""sha256 digests of model files, recorded when a model is registered and checked before it
is loaded, so a file changed in the artifact store (by accident or not) is refused by name
instead of answering requests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from ferops.kernel.errors import DataError


class ModelFileChanged(DataError):
    """A model file's sha256 is not the one recorded when the model was registered."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(paths: Iterable[Path]) -> dict[str, str]:
    """{file name: sha256} for files that sit side by side in one model folder."""
    return {Path(path).name: sha256_file(path) for path in paths}


def verify_files(paths: Iterable[Path], recorded: Mapping[str, str], source: str) -> None:
    """Refuse (ModelFileChanged) any file in `paths` whose digest is not `recorded[name]`,
    including a file the record does not list."""
    for path in paths:
        path = Path(path)
        expected = recorded.get(path.name)
        if expected is None:
            raise ModelFileChanged(
                f"{source}: {path.name} has no recorded sha256 (recorded: "
                f"{', '.join(sorted(recorded)) or 'none'}); refusing to load it"
            )
        actual = sha256_file(path)
        if actual != expected:
            raise ModelFileChanged(
                f"{source}: {path.name} has sha256 {actual[:12]}…, not the {expected[:12]}… "
                "recorded when it was registered; the file changed after registration, so it "
                "is not loaded (restore it, or register the model again)"
            )


DIGEST_TAG = "sha256"  # one registry version tag: "model.keras=<hex> model.onnx=<hex> ..."
OLD_TAG_PREFIX = "sha256/"  # versions registered before: one tag per file


def digest_tags(digests: Mapping[str, str]) -> dict[str, str]:
    """The digests as one version tag (a row in the registry's version list, not three)."""
    return {DIGEST_TAG: " ".join(f"{name}={digest}" for name, digest in digests.items())}


def digests_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """{file name: digest} from a version's tags, whichever way it was registered."""
    recorded = {
        k.removeprefix(OLD_TAG_PREFIX): v for k, v in tags.items() if k.startswith(OLD_TAG_PREFIX)
    }
    for pair in tags.get(DIGEST_TAG, "").split():
        name, _, digest = pair.partition("=")
        recorded[name] = digest
    return recorded
