"""Figures a reviewer reads: marginals, correlation difference, losses, DCR, detection ROC.

Each returns a matplotlib Figure (Agg backend, no display needed).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
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
    for column in [c for c in history.columns if c != "epoch"]:
        ax.plot(history["epoch"], history[column], label=column.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title("Training losses")
    fig.tight_layout()
    return fig


def dcr_histograms(distances: Distances):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    top = np.percentile(np.r_[distances.synthetic_to_train, distances.holdout_to_train], 99)
    bins = np.linspace(0, top, 40)
    ax.hist(distances.synthetic_to_train, bins=bins, alpha=0.55, density=True, label="synthetic → nearest train")
    ax.hist(distances.holdout_to_train, bins=bins, alpha=0.55, density=True, label="holdout → nearest train")
    ax.set_xlabel("distance to closest record")
    ax.legend()
    ax.set_title("Distance to closest training record")
    fig.tight_layout()
    return fig


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
