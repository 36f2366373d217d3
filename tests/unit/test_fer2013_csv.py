"""Reading FER2013's CSV: splits by Usage, and bad rows named by line and field."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ferops.data.fer2013_csv import read_fer2013_csv
from ferops.kernel.errors import DataError
from tests.helpers import noise_faces

USAGES = ["Training"] * 18 + ["PublicTest"] * 6 + ["PrivateTest"] * 6


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return path


def good_rows() -> list[list[str]]:
    faces = noise_faces(30)
    return [
        [str(i % 7), " ".join(map(str, face.ravel())), usage]
        for i, (face, usage) in enumerate(zip(faces, USAGES, strict=True))
    ]


def test_a_30_row_csv_is_split_by_usage_with_pixels_and_rows_kept(tmp_path):
    rows = good_rows()
    faceset = read_fer2013_csv(write_csv(tmp_path / "fer2013.csv", rows))
    assert [len(faceset[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    assert faceset["train"].x.dtype == np.uint8 and faceset["train"].x.shape[1:] == (48, 48)
    assert faceset["val"].y.tolist() == [i % 7 for i in range(18, 24)]
    expected = np.array(rows[20][1].split(), dtype=np.uint8).reshape(48, 48)
    assert np.array_equal(faceset["val"].x[2], expected)
    assert faceset["val"].sources[2] == "fer2013.csv:line 22"  # header is line 1


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (4, 1, "1 2 3"),  # wrong pixel count
        (7, 1, "x " * 2304),  # not numbers
        (9, 1, "300 " * 2304),  # out of range
        (5, 0, "9"),  # unknown emotion code
        (5, 0, "happy"),
        (11, 2, "Validation"),  # unknown usage
    ],
)
def test_a_bad_row_is_an_error_naming_line_and_field(tmp_path, row, field, message):
    rows = good_rows()
    rows[row][field] = message.strip()
    path = write_csv(tmp_path / "fer2013.csv", rows)
    names = ["emotion", "pixels", "Usage"]
    with pytest.raises(DataError, match=rf"line {row + 2}, field {names[field]}"):
        read_fer2013_csv(path)


def test_missing_file_column_and_split_are_named(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_fer2013_csv(tmp_path / "nope.csv")
    (tmp_path / "cols.csv").write_text("emotion,pixel,Usage\n0,1,Training\n")
    with pytest.raises(DataError, match=r"missing column.*pixels"):
        read_fer2013_csv(tmp_path / "cols.csv")
    rows = [r for r in good_rows() if r[2] != "PrivateTest"]
    with pytest.raises(DataError, match="test hold no images"):
        read_fer2013_csv(write_csv(tmp_path / "nosplit.csv", rows))
