"""Figures for people: confusion matrix, reliability diagram, per-class bars, attention maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ferops.kernel.emotions import EMOTIONS, NUM_CLASSES
from ferops.kernel.files import atomic_path
from ferops.models.attention import spatial_attention_maps


def _save(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as staged:
        figure.savefig(staged, dpi=110, format="png")
    plt.close(figure)


def confusion(counts: np.ndarray, normalised: np.ndarray, path: Path) -> None:
    """Counts and row-normalised rates side by side (rows: actual, columns: predicted)."""
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.5), layout="constrained")
    for ax, matrix, title, fmt in (
        (axes[0], counts, "counts", "d"),
        (axes[1], normalised, "share of each actual emotion", ".2f"),
    ):
        image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for i in range(NUM_CLASSES):
            for j in range(NUM_CLASSES):
                ax.text(
                    j,
                    i,
                    format(matrix[i, j], fmt),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if normalised[i, j] > 0.5 else "black",
                )
        ax.set(
            xticks=range(NUM_CLASSES),
            yticks=range(NUM_CLASSES),
            xticklabels=EMOTIONS,
            yticklabels=EMOTIONS,
            xlabel="predicted",
            ylabel="actual",
            title=title,
        )
        ax.tick_params(axis="x", rotation=45)
    figure.colorbar(image, ax=axes, shrink=0.8)
    _save(figure, path)


def reliability(table: pd.DataFrame, ece: float, path: Path) -> None:
    """Accuracy against confidence per bin, each bar labelled with its number of faces.

    The count matters: a bin holding two faces reads as 100 % or 0 % and says little.
    """
    figure, ax = plt.subplots(figsize=(5.5, 5.3), layout="constrained")
    filled = table[table["count"] > 0]
    width = float(table["bin_high"].iloc[0] - table["bin_low"].iloc[0])
    bars = ax.bar(
        filled["bin_low"],
        filled["accuracy"],
        width=width,
        align="edge",
        alpha=0.7,
        edgecolor="black",
        label="accuracy (n = faces in the bin)",
    )
    ax.bar_label(bars, labels=[f"{int(n)}" for n in filled["count"]], fontsize=7, padding=1)
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"Reliability (ECE {ece:.3f})", pad=28)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=8, frameon=False)
    _save(figure, path)


def per_class(table: pd.DataFrame, path: Path) -> None:
    """Precision, recall and F1 for each emotion, with its test support."""
    figure, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    x = np.arange(len(table))
    for offset, column in zip((-0.27, 0, 0.27), ("precision", "recall", "f1"), strict=True):
        ax.bar(x + offset, table[column].astype(float), width=0.27, label=column)
    labels = [f"{e}\n(n={int(s)})" for e, s in zip(table.index, table["support"], strict=True)]
    ax.set(xticks=x, xticklabels=labels, ylim=(0, 1))
    ax.set_title("Per-class test figures", pad=24)
    # Above the axes, so no bar is hidden behind it.
    ax.legend(ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    _save(figure, path)


def attention_sheet(
    model,
    faces: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    path: Path,
    per_class: int = 2,
) -> bool:
    """Test faces with the first spatial-attention map overlaid; False if the model has none."""
    picks = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)])
    maps = spatial_attention_maps(model, faces[picks])
    if maps is None:
        return False
    columns = per_class * 2
    rows = int(np.ceil(len(picks) / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.9, rows * 2.1), layout="constrained"
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index, attention in zip(axes.ravel(), picks, maps, strict=False):
        predicted = int(probabilities[index].argmax())
        ax.imshow(faces[index], cmap="gray", vmin=0, vmax=255)
        ax.imshow(attention, cmap="jet", alpha=0.4, extent=(-0.5, 47.5, 47.5, -0.5))
        colour = "green" if predicted == labels[index] else "red"
        ax.set_title(f"{EMOTIONS[labels[index]]} → {EMOTIONS[predicted]}", fontsize=8, color=colour)
    figure.suptitle("Where the model looks (first spatial-attention map)", fontsize=10)
    _save(figure, path)
    return True
