"""Figures a reviewer reads: marginals, correlation difference, losses, DCR, detection ROC.

Each returns a matplotlib Figure (Agg backend, no display needed).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
# Column names and category values are the user's text: '$' must not start mathtext (a name like
# '$\\frac{a}{$' crashed the figures after training)
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from evaluation.features import _as_number  # noqa: E402
from evaluation.privacy import Distances  # noqa: E402


def marginals(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str], limit: int = 12):
    columns = [c for c, k in kinds.items() if k != "id" and c in synthetic.columns][:limit]
    ncols = 4
    nrows = max(1, int(np.ceil(len(columns) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.8 * nrows), squeeze=False)
    for ax, column in zip(axes.flat, columns):
        if kinds[column] in ("numeric", "datetime"):
            a, b = _as_number(real[column]).dropna(), _as_number(synthetic[column]).dropna()
            bins = np.histogram_bin_edges(np.r_[a, b], bins=30)
            ax.hist(a, bins=bins, alpha=0.55, density=True, label="real")
            ax.hist(b, bins=bins, alpha=0.55, density=True, label="synthetic")
        else:
            p = real[column].astype(str).value_counts(normalize=True)
            q = synthetic[column].astype(str).value_counts(normalize=True)
            both = pd.DataFrame({"real": p, "synthetic": q}).fillna(0).head(15)
            both.plot.bar(ax=ax, legend=False, alpha=0.8)
        ax.set_title(column, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Real (train) vs synthetic marginals")
    fig.tight_layout()
    return fig


def correlation_heatmap(difference: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(difference.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [str(c)[:18] for c in difference.columns]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.colorbar(image, ax=ax, label="synthetic − real Pearson r")
    ax.set_title("Correlation difference")
    fig.tight_layout()
    return fig


def loss_curves(history: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    step = history.columns[0]  # epoch (tables) or iteration (images)
    for column in history.columns[1:]:
        ax.plot(history[step], history[column], label=column.replace("_", " "))
    ax.set_xlabel(step)
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title("Training losses")
    fig.tight_layout()
    return fig


def dcr_histograms(distances: Distances):
    return distance_histograms(distances.synthetic_to_train, distances.holdout_to_train,
                               "Distance to closest training record")


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """One ROC curve per (labels, scores) pair, with its AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_grid(rows: list[tuple[str, np.ndarray]], title: str, per_row: int = 10):
    """One row of images per (label, images) entry."""
    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 0.9, len(rows) * 1.0 + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(label, fontsize=7, loc="left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def nearest_pairs(synthetic: np.ndarray, train: np.ndarray | None, pairs: list[tuple[int, int, float]]):
    """The synthetic images closest to a training image, each above its nearest training image;
    with `train` None, the synthetic images and their distances only (for data too private to show)."""
    rows = 1 if train is None else 2
    fig, axes = plt.subplots(rows, len(pairs), figsize=(len(pairs) * 1.1, 1.4 * rows), squeeze=False)
    for c, (s, t, distance) in enumerate(pairs):
        axes[0, c].imshow(synthetic[s], cmap="gray", vmin=0, vmax=255)
        axes[0, c].set_title(f"{distance:.0f}", fontsize=7)
        for r in range(rows):
            axes[r, c].axis("off")
        if train is not None:
            axes[1, c].imshow(train[t], cmap="gray", vmin=0, vmax=255)
    title = ("Closest synthetic (top) / training (bottom) pairs, pixel L2 distance" if train is not None else
             "Synthetic images closest to a training image (pixel L2 distance; training images not shown)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def distance_histograms(synthetic_to_train: np.ndarray, holdout_to_train: np.ndarray, title: str):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    top = np.percentile(np.r_[synthetic_to_train, holdout_to_train], 99)
    bins = np.linspace(0, top, 40)
    ax.hist(synthetic_to_train, bins=bins, alpha=0.55, density=True, label="synthetic → nearest train")
    ax.hist(holdout_to_train, bins=bins, alpha=0.55, density=True, label="holdout → nearest train")
    ax.set_xlabel("distance to closest training record")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig
