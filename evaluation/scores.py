"""All tabular scores in one call: pure function of (real train, real holdout, synthetic)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evaluation.fidelity import (adherence, column_shapes, correlation_difference, detection_auc, pair_trends,
                                 sdmetrics_quality)
from evaluation.privacy import (Distances, attribute_inference, membership_inference, nearest_distances,
                                privacy_scores, strongest_attack)
from evaluation.utility import utility_scores
from synth import progress


@dataclass
class TabularEvaluation:
    metrics: dict[str, float]
    column_shapes: dict[str, float]
    pair_trends: dict[str, float]
    correlation_difference: pd.DataFrame
    detection_roc: tuple[np.ndarray, np.ndarray]
    distances: Distances
    membership_roc: dict[str, tuple[np.ndarray, np.ndarray]]


def evaluate_tabular(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                     kinds: dict[str, str], target: str | None = None, seed: int = 0,
                     sensitive: list[str] | None = None) -> TabularEvaluation:
    kinds = {c: k for c, k in kinds.items() if k != "id" and c in synthetic.columns}
    families = 3 if target is not None else 2
    progress.update("evaluate", 0, families, family="fidelity")
    shapes = column_shapes(train, synthetic, kinds)
    trends = pair_trends(train, synthetic, kinds)
    auc, labels, scores = detection_auc(train, synthetic, kinds, seed=seed)
    distances = nearest_distances(train, holdout, synthetic, kinds)
    reference = sdmetrics_quality(train, synthetic, kinds)
    metrics = {
        "fidelity_quality": reference["score"],
        "fidelity_column_shapes": float(np.mean(list(shapes.values()))),
        "fidelity_pair_trends": reference["pair_trends"],
        "fidelity_pair_trends_all_pairs": float(np.mean(list(trends.values()))) if trends else float("nan"),
        "fidelity_detection_auc": auc,
    }
    metrics.update(adherence(train, synthetic, kinds))
    progress.update("evaluate", 1, families, family="privacy")
    metrics.update(privacy_scores(train, holdout, synthetic, kinds, distances))
    attacks = membership_inference(train, holdout, synthetic, kinds, seed=seed)
    metrics["privacy_mia_distance_auc"] = attacks["distance"][0]
    metrics["privacy_mia_density_auc"] = attacks["density_ratio"][0]
    metrics.update(strongest_attack(attacks, seed=seed))
    metrics.update(attribute_inference(train, holdout, synthetic, kinds, sensitive or []))
    if target is not None:
        progress.update("evaluate", 2, families, family="utility")
        metrics.update(utility_scores(train, holdout, synthetic, kinds, target, seeds=range(seed, seed + 5)))
    progress.update("evaluate", families, families, family="done")
    return TabularEvaluation(metrics, shapes, trends, correlation_difference(train, synthetic, kinds),
                             (labels, scores), distances, {k: v[1:] for k, v in attacks.items()})
