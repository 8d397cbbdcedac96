"""Whether the synthetic rows are useful for the task the data exists for.

For each model and seed (five; a bootstrap resample of each training set), trained on real train (TRTR), synthetic only (TSTR)
real + synthetic (augmented), and real + as many SMOTE rows per class as the
synthetic set added (the standard alternative), tested on the real holdout.
Large tables: at most MAX_ROWS real and MAX_ROWS synthetic rows (seeded), the
same cap for every training set so the comparison stays fair. Lift is
augmented minus real; SMOTE lift is SMOTE minus real. The holdout never reached the generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.features import FeatureEncoder, model_threads

MODELS = ("logistic", "gbm")
MAX_ROWS = 10_000  # per real and per synthetic training part: AUCs plateau long before, fits stay in seconds


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


def _smote_like(x_train: np.ndarray, y_train: np.ndarray, y_syn: np.ndarray):
    """Real rows plus as many SMOTE rows, per class, as the synthetic set added; None if SMOTE cannot run."""
    from imblearn.over_sampling import SMOTE

    labels, counts = np.unique(y_train, return_counts=True)
    added = dict(zip(*np.unique(y_syn, return_counts=True)))
    strategy = {label: int(count + added.get(label, 0)) for label, count in zip(labels, counts)}
    if min(counts) < 2:
        return None
    smote = SMOTE(sampling_strategy=strategy, k_neighbors=min(5, int(min(counts)) - 1), random_state=0)
    return smote.fit_resample(x_train, y_train)


def utility_scores(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                   kinds: dict[str, str], target: str, seeds=(0, 1, 2, 3, 4)) -> dict[str, float]:
    """AUCs on the holdout, mean and spread over seeds, per model and training set."""
    train, synthetic = (f.sample(MAX_ROWS, random_state=0) if len(f) > MAX_ROWS else f for f in (train, synthetic))
    features = {c: k for c, k in kinds.items() if c != target}
    encoder = FeatureEncoder(features).fit(train)
    x_train, x_hold, x_syn = (encoder.transform(f) for f in (train, holdout, synthetic))
    y_train, y_hold, y_syn = (f[target].astype(str).to_numpy() for f in (train, holdout, synthetic))
    classes = sorted(set(y_train))
    sets = {"real": (x_train, y_train), "augmented": (np.vstack([x_train, x_syn]), np.r_[y_train, y_syn])}
    smote = _smote_like(x_train, y_train, y_syn)
    if smote is not None:  # the standard way to fill a minority class, with the same number of rows
        sets["smote"] = smote
    if len(set(y_syn)) > 1:  # a one-class synthetic set (a conditioned request) cannot train alone
        sets["synthetic"] = (x_syn, y_syn)
    out = {}
    with model_threads(len(x_train) + len(x_syn)):
        for model_name in MODELS:
            out.update(_scores_for(model_name, sets, x_hold, y_hold, classes, seeds))
    return out


def _scores_for(model_name: str, sets: dict, x_hold, y_hold, classes, seeds) -> dict[str, float]:
    """One model's holdout AUC per training set and seed, with lifts over real-only training."""
    out = {}
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
    for name in ("augmented", "smote"):
        if name in results:
            lift = np.array(results[name]) - np.array(results["real"])
            suffix = "lift" if name == "augmented" else "smote_lift"
            out[f"utility_{model_name}_{suffix}"] = float(lift.mean())
            out[f"utility_{model_name}_{suffix}_std"] = float(lift.std())
            low, high = lift_interval(lift)
            out[f"utility_{model_name}_{suffix}_low"], out[f"utility_{model_name}_{suffix}_high"] = low, high
    return out


def lift_interval(lifts: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean lift over repeats; one that covers 0 is no detectable lift."""
    from scipy import stats

    if len(lifts) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(lifts) - 1) * lifts.std(ddof=1) / np.sqrt(len(lifts))
    return float(lifts.mean() - half), float(lifts.mean() + half)
