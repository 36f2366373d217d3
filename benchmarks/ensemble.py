"""What averaging several trained models would buy: accuracy of each model and of their mean,
plain and with test-time augmentation, on val (to choose) and test (to report). A script, not
a test; ferops ships one model, because an ensemble of k costs k times the inference.

    python benchmarks/ensemble.py --processed FER2013_PROJECT/data/processed A.keras B.keras
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ferops.data.faceset import load_faceset
from ferops.evaluation.metrics import classification_metrics
from ferops.evaluation.tta import view_probabilities
from ferops.models.builders import load_model

VIEWS = ("plain", "flip", "flip+shift")


def probabilities(model, faces: np.ndarray) -> dict[str, np.ndarray]:
    """The model's probabilities on the faces, plain and under each test-time augmentation."""
    plain = model.predict(faces, batch_size=256, verbose=0)
    mirrored, *moved = view_probabilities(model, faces, shifts=True)
    return {
        "plain": plain,
        "flip": np.mean([plain, mirrored], axis=0),
        "flip+shift": np.mean([plain, mirrored, *moved], axis=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="data/processed folder")
    parser.add_argument("models", type=Path, nargs="+", help=".keras files")
    args = parser.parse_args()
    faceset = load_faceset(args.processed)
    models = {path.name: load_model(path) for path in args.models}
    print(f"{'model':<40} {'split':<5} " + " ".join(f"{v:>16}" for v in VIEWS))
    for split in ("val", "test"):
        faces, labels = faceset[split].x, faceset[split].y
        predicted = {name: probabilities(model, faces) for name, model in models.items()}
        if len(models) > 1:
            predicted["mean of all"] = {
                view: np.mean([p[view] for p in predicted.values()], axis=0) for view in VIEWS
            }
        for name, views in predicted.items():
            cells = []
            for view in VIEWS:
                metrics = classification_metrics(labels, views[view])
                cells.append(f"{metrics['accuracy']:.4f} / {metrics['macro_f1']:.4f}")
            print(f"{name:<40} {split:<5} " + " ".join(f"{c:>16}" for c in cells))
    print("cells: accuracy / macro F1")


if __name__ == "__main__":
    main()
