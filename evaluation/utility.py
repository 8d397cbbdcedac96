"""Whether the synthetic rows are useful for the task the data exists for.

For each model and seed (a bootstrap resample of each training set), trained on real train (TRTR), synthetic only (TSTR)
and real + synthetic (augmented), tested on the real holdout. Lift is
augmented minus real. The holdout never reached the generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.features import FeatureEncoder

MODELS = ("logistic", "gbm")


def _model(name: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "logistic":
        return LogisticRegression(max_iter=2000, random_state=seed)
    return HistGradientBoostingClassifier(max_iter=150, random_state=seed)


def _auc(model, x, y, classes) -> float:
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(x)
    if len(classes) == 2:
        positive = list(model.classes_).index(classes[1])
        return float(roc_auc_score(y == classes[1], proba[:, positive]))
    full = np.zeros((len(x), len(classes)))
    for i, label in enumerate(model.classes_):
        full[:, classes.index(label)] = proba[:, i]
    return float(roc_auc_score(y, full, multi_class="ovr", labels=classes))


def utility_scores(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                   kinds: dict[str, str], target: str, seeds=(0, 1, 2)) -> dict[str, float]:
    """AUCs on the holdout, mean and spread over seeds, per model and training set."""
    features = {c: k for c, k in kinds.items() if c != target}
    encoder = FeatureEncoder(features).fit(train)
    x_train, x_hold, x_syn = (encoder.transform(f) for f in (train, holdout, synthetic))
    y_train, y_hold, y_syn = (f[target].astype(str).to_numpy() for f in (train, holdout, synthetic))
    classes = sorted(set(y_train))
    sets = {"real": (x_train, y_train), "augmented": (np.vstack([x_train, x_syn]), np.r_[y_train, y_syn])}
    if len(set(y_syn)) > 1:  # a one-class synthetic set (a conditioned request) cannot train alone
        sets["synthetic"] = (x_syn, y_syn)
    out = {}
    for model_name in MODELS:
        results = {name: [] for name in sets}
        for seed in seeds:
            rng = np.random.default_rng(seed)
            for name, (x, y) in sets.items():
                rows = rng.integers(0, len(x), len(x))  # bootstrap: the spread reflects the data, not just the seed
                model = _model(model_name, seed).fit(x[rows], y[rows])
                results[name].append(_auc(model, x_hold, y_hold, classes))
        for name, values in results.items():
            out[f"utility_{model_name}_{name}_auc"] = float(np.mean(values))
            out[f"utility_{model_name}_{name}_auc_std"] = float(np.std(values))
        lift = np.array(results["augmented"]) - np.array(results["real"])
        out[f"utility_{model_name}_lift"] = float(lift.mean())
        out[f"utility_{model_name}_lift_std"] = float(lift.std())
    return out
