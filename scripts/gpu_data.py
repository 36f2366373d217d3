"""Carry processed faces to a lent GPU machine, losslessly and small, and lay them out there.

    python scripts/gpu_data.py pack data/processed .gpu/faces.npz     # here
    python scripts/gpu_data.py unpack .gpu/faces.npz data/processed    # there

The machine takes at most 64 MiB of working tree, and FER2013's processed arrays are 78 MB.
Each face is stored as the residual of the median edge detector predictor (LOCO-I's, as in
lossless JPEG-LS) and the residuals are xz-compressed: 1.78 kB a face where PNG takes 1.88,
about 54 MB for train and val. The test split (PrivateTest) is
not carried: the GPU run tunes and trains on train and val only, and `evaluate` scores test
here. The unpacked test split is empty; `sha1` records the carried splits' pixels and labels so
`ferops import-runs` can check that the run saw exactly this project's train and val.
"""

from __future__ import annotations

import argparse
import json
import lzma
from pathlib import Path

import numpy as np

from ferops.data.faceset import Split, load_faceset, save_faceset

CARRIED = ("train", "val")


def predict_med(x: np.ndarray) -> np.ndarray:
    """Each pixel predicted from its left (a), upper (b) and upper-left (c) neighbours: min(a, b)
    or max(a, b) at an edge, else a + b - c; outside the face the neighbours are 0."""
    a, b, c = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    a[:, :, 1:], b[:, 1:, :], c[:, 1:, 1:] = x[:, :, :-1], x[:, :-1, :], x[:, :-1, :-1]
    return med(a, b, c)


def med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    high, low = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= high, low, np.where(c <= low, high, a + b - c))


def encode(faces: np.ndarray) -> bytes:
    x = faces.astype(np.int16)
    residual = ((x - predict_med(x)) % 256).astype(np.uint8)
    return lzma.compress(residual.tobytes(), preset=9 | lzma.PRESET_EXTREME)


def decode(blob: bytes, count: int) -> np.ndarray:
    """Undo `encode` pixel by pixel in raster order, all faces at once."""
    residual = np.frombuffer(lzma.decompress(blob), np.uint8).reshape(count, 48, 48)
    x = np.zeros((count, 48, 48), np.int16)
    zero = np.zeros(count, np.int16)
    for i in range(48):
        for j in range(48):
            a = x[:, i, j - 1] if j else zero
            b = x[:, i - 1, j] if i else zero
            c = x[:, i - 1, j - 1] if i and j else zero
            x[:, i, j] = (med(a, b, c) + residual[:, i, j]) % 256
    return x.astype(np.uint8)


def pack(processed: Path, out: Path) -> None:
    faceset = load_faceset(processed)
    arrays: dict[str, np.ndarray] = {}
    for name in CARRIED:
        split = faceset[name]
        arrays[f"{name}_y"] = split.y.astype(np.int8)
        arrays[f"{name}_x"] = np.frombuffer(encode(split.x), np.uint8)
    sha1 = {name: faceset[name].content_sha1() for name in CARRIED}
    arrays["sha1"] = np.frombuffer(json.dumps(sha1).encode(), dtype=np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    print(f"packed {', '.join(f'{n} {len(faceset[n])}' for n in CARRIED)} into {out}")


def unpack(pack_file: Path, processed: Path) -> None:
    with np.load(pack_file) as arrays:
        faceset = {}
        for name in CARRIED:
            y = arrays[f"{name}_y"]
            x = decode(arrays[f"{name}_x"].tobytes(), len(y))
            faceset[name] = Split(x, y, [f"carried:{name}/{i}" for i in range(len(y))])
        expected = json.loads(arrays["sha1"].tobytes())
    for name in CARRIED:
        if faceset[name].content_sha1() != expected[name]:
            raise SystemExit(f"{pack_file}: {name} does not match its recorded sha1")
    faceset["test"] = Split(np.zeros((0, 48, 48), np.uint8), np.zeros(0, np.int8), [])
    save_faceset(faceset, processed)
    (processed / "carried_sha1.json").write_text(json.dumps(expected))
    print(f"unpacked {', '.join(f'{n} {len(faceset[n])}' for n in CARRIED)} into {processed}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    (pack if args.action == "pack" else unpack)(args.source, args.target)
