"""Logged faces out for review, reviewed faces back in as data.

`export` writes the kept faces of a log window as an image folder by predicted emotion, with a
manifest (request id, row, model, prediction). A reviewer moves a file to the right emotion's
folder, or fills the manifest's `label` column (it wins where both say something). `import`
checks every row and file first, and writes nothing unless all pass: known emotions, readable
48x48 faces, no copy of a val or test face (the duplicate check preprocess runs), no answer
imported twice. A batch lands in data/feedback/<batch>/ as `faces.npz` and `provenance.csv`;
a seeded share of it (by request id, so a face keeps its side) is the production slice that
evaluate scores apart and training never sees.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ferops.data.faceset import FaceSet, Split, face_sha1
from ferops.imaging.decode import FACE_SHAPE, UnreadableImage, decode_grey
from ferops.kernel.emotions import EMOTIONS, emotion_label
from ferops.kernel.errors import DataError
from ferops.kernel.files import write_npz

MANIFEST = "manifest.csv"
PROVENANCE = "provenance.csv"
FACES = "faces.npz"
TRAIN, PRODUCTION = "train", "production"
SHOWN_ERRORS = 20
MANIFEST_COLUMNS = (
    "file",
    "request_id",
    "row",
    "time",
    "model_uri",
    "model_sha256",
    "predicted",
    "confidence",
    "label",
)


def export_for_review(answers: pd.DataFrame, out: Path) -> int:
    """Write the faces kept in `answers` (prediction-log rows) under out/<predicted emotion>/
    and out/manifest.csv; return how many. An existing, non-empty `out` is refused: it may be
    a review in progress."""
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: not empty; export into a new folder (a review may be under way)")
    kept = answers[answers["face_png"].notna()] if "face_png" in answers else answers.iloc[:0]
    if kept.empty:
        raise DataError(
            f"none of the {len(answers)} logged answer(s) kept its face: faces are stored only "
            "when the server runs with FEROPS_PREDICTION_LOG_FACES=1"
        )
    rows = []
    for answer in kept.itertuples(index=False):
        name = f"{answer.request_id}-{answer.row}.png"
        folder = out / answer.emotion
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(answer.face_png)
        rows.append(
            {
                "file": name,
                "request_id": answer.request_id,
                "row": int(answer.row),
                "time": answer.time.isoformat(),
                "model_uri": answer.model_uri,
                "model_sha256": answer.model_sha256,
                "predicted": answer.emotion,
                "confidence": round(float(answer.confidence), 4),
                "label": "",
            }
        )
    for emotion in EMOTIONS:  # every folder there, so a face can be moved to any of them
        (out / emotion).mkdir(exist_ok=True)
    pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).to_csv(out / MANIFEST, index=False)
    return len(rows)


@dataclass
class Reviewed:
    faces: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # int8 (N,)
    provenance: pd.DataFrame  # manifest rows, with label and sha1


def read_review(folder: Path) -> Reviewed:
    """Every manifest row with its face and reviewed label; a DataError listing each bad
    file or row (by name and row number) when any is wrong."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path}: not found (was {folder} made by `feedback export`?)")
    manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise DataError(f"{manifest_path}: missing column(s) {', '.join(missing)}")
    errors: list[str] = []
    located: dict[str, tuple[Path, int | None]] = {}
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            label: int | None = emotion_label(child.name, where=str(child))
        except DataError as exc:
            errors.append(str(exc))
            label = None
        for path in sorted(p for p in child.iterdir() if p.is_file()):
            if path.name in located:
                errors.append(f"{path}: the same file is also in {located[path.name][0].parent}")
            located[path.name] = (path, label)
    listed = set(manifest["file"])
    errors += [f"{p}: not in {MANIFEST}" for name, (p, _) in located.items() if name not in listed]
    faces, labels = [], []
    for number, entry in enumerate(manifest.itertuples(index=False), start=2):  # header: row 1
        where = f"{manifest_path} row {number} ({entry.file})"
        if entry.file not in located:
            errors.append(f"{where}: the file is in no emotion folder")
            continue
        path, folder_label = located[entry.file]
        try:
            label = folder_label
            if entry.label.strip():  # the label column wins over the folder
                label = emotion_label(entry.label, where=f"{where}, label")
            face = decode_grey(path)
        except DataError as exc:
            errors.append(str(exc))
            continue
        except UnreadableImage as exc:
            errors.append(f"{path}: not a readable image ({exc})")
            continue
        if face.shape != FACE_SHAPE:
            errors.append(f"{path}: {face.shape[1]}x{face.shape[0]}, not a 48x48 face")
            continue
        if label is None:
            continue  # its folder's name is already reported
        faces.append(face)
        labels.append(label)
    if errors:
        shown = "\n  ".join(errors[:SHOWN_ERRORS])
        more = f"\n  … and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        raise DataError(f"{folder}: nothing imported; {len(errors)} problem(s):\n  {shown}{more}")
    x = np.stack(faces) if faces else np.zeros((0, *FACE_SHAPE), np.uint8)
    provenance = manifest.assign(label=[EMOTIONS[i] for i in labels], sha1=face_sha1(x))
    return Reviewed(x, np.asarray(labels, np.int8), provenance)


def check_new(reviewed: Reviewed, held_out: FaceSet, feedback: Path) -> None:
    """Refuse copies of val or test faces (training on them would flatter every figure we
    report) and answers imported before."""
    kept = {
        sha1: f"{split} face {part.sources[i]}"
        for split in ("val", "test")
        if split in held_out
        for part in [held_out[split]]
        for i, sha1 in enumerate(face_sha1(part.x))
    }
    seen = set(imported(feedback)["answer"]) if feedback.is_dir() else set()
    errors = []
    for number, entry in enumerate(reviewed.provenance.itertuples(index=False), start=2):
        if entry.sha1 in kept:
            where = f"{MANIFEST} row {number} ({entry.file})"
            errors.append(f"{where}: a copy of the {kept[entry.sha1]}")
        if f"{entry.request_id}-{entry.row}" in seen:
            errors.append(f"{MANIFEST} row {number} ({entry.file}): imported before")
    if errors:
        raise DataError("nothing imported; " + "; ".join(errors[:SHOWN_ERRORS]))


def production_share(request_ids: pd.Series, fraction: float) -> np.ndarray:
    """Which answers form the production slice: a hash of the request id, so the choice is
    the same on every machine and every face of one request falls on one side."""
    values = [int(hashlib.sha1(r.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for r in request_ids]
    return np.asarray(values) < fraction


def write_batch(reviewed: Reviewed, feedback: Path, holdout_fraction: float) -> Path:
    """data/feedback/<batch>/ with faces.npz and provenance.csv, staged then renamed."""
    batch = datetime.now(UTC).strftime("batch-%Y%m%d-%H%M%S")
    target = feedback / batch
    staged = feedback / f".{batch}.tmp"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    split = np.where(
        production_share(reviewed.provenance["request_id"], holdout_fraction), PRODUCTION, TRAIN
    )
    write_npz(staged / FACES, x=reviewed.faces, y=reviewed.labels)
    reviewed.provenance.assign(split=split).to_csv(staged / PROVENANCE, index=False)
    staged.rename(target)
    return target


def imported(feedback: Path) -> pd.DataFrame:
    """Every imported row's provenance (with `answer` = request id and row, and `batch`)."""
    frames = []
    for path in sorted(feedback.glob(f"batch-*/{PROVENANCE}")):
        frame = pd.read_csv(path, dtype={"request_id": str, "row": int})
        frames.append(frame.assign(batch=path.parent.name))
    if not frames:
        return pd.DataFrame(columns=["answer", "label", "split", "batch"])
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(answer=frame["request_id"] + "-" + frame["row"].astype(str))


def feedback_splits(feedback: Path) -> dict[str, Split]:
    """The imported faces as a train part and a production slice (sources name the batch
    and the answer), for ingest to merge."""
    parts: dict[str, list[Split]] = {TRAIN: [], PRODUCTION: []}
    for path in sorted(feedback.glob(f"batch-*/{FACES}")):
        with np.load(path) as arrays:
            x, y = arrays["x"], arrays["y"]
        provenance = pd.read_csv(path.parent / PROVENANCE, dtype={"request_id": str})
        if len(provenance) != len(y):
            raise DataError(f"{path}: {len(y)} faces but {len(provenance)} provenance rows")
        sources = [
            f"feedback:{path.parent.name}:{r}-{n}"
            for r, n in zip(provenance["request_id"], provenance["row"], strict=True)
        ]
        for split in parts:
            keep = (provenance["split"] == split).to_numpy()
            parts[split].append(
                Split(x[keep], y[keep], [s for s, k in zip(sources, keep, strict=True) if k])
            )
    return {
        split: Split(
            np.concatenate([p.x for p in found]) if found else np.zeros((0, *FACE_SHAPE), np.uint8),
            np.concatenate([p.y for p in found]) if found else np.zeros(0, np.int8),
            [s for p in found for s in p.sources],
        )
        for split, found in parts.items()
    }


def reviewed_labels(feedback: Path, answers: pd.DataFrame) -> pd.Series | None:
    """The reviewed emotion of each answer in `answers` that has one (else NaN)."""
    if answers.empty or not feedback.is_dir():
        return None
    known = imported(feedback).drop_duplicates("answer", keep="last").set_index("answer")["label"]
    if known.empty:
        return None
    keys = answers["request_id"] + "-" + answers["row"].astype(str)
    return pd.Series(keys.map(known).to_numpy(), index=answers.index)
