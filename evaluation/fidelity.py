"""How closely the synthetic rows follow the real training rows.

Definitions follow SDMetrics' quality report so numbers are comparable:
column shape = 1 − KS statistic (numbers) or 1 − total variation distance
(categories); pair trend = 1 − |r_real − r_synth| / 2 for number pairs (Pearson)
and 1 − total variation of the joint frequency table for the rest, numbers
binned into deciles of the real column.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.features import FeatureEncoder, _as_number, model_threads

NUMERIC_KINDS = ("numeric", "datetime")
SDMETRICS_TYPES = {"numeric": "numerical", "datetime": "datetime", "categorical": "categorical",
                   "boolean": "boolean"}
QUALITY_ROWS = 5000  # rows of each side the SDMetrics report reads (seeded subsample above that)


def sdmetrics_quality(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> dict[str, float]:
    """SDMetrics' own `QualityReport` on up to QUALITY_ROWS rows of each: its score, column shapes and
    column pair trends. The package averages pair trends only over the pairs it finds related in
    the real data, which our all-pairs average (`pair_trends`) does not; the package is the reference
    a reader compares with, so `fidelity_quality` is its number."""
    from sdmetrics.reports.single_table import QualityReport

    columns = [c for c, k in kinds.items() if k in SDMETRICS_TYPES and c in synthetic.columns]
    metadata = {"columns": {c: {"sdtype": SDMETRICS_TYPES[kinds[c]]} for c in columns}}
    for c in columns:
        if kinds[c] == "datetime":
            metadata["columns"][c]["datetime_format"] = None
    real, synthetic = (f[columns].sample(min(len(f), QUALITY_ROWS), random_state=0) for f in (real, synthetic))
    for frame in (real, synthetic):
        for c in (c for c in columns if kinds[c] == "datetime"):
            frame[c] = pd.to_datetime(frame[c], errors="coerce", format="mixed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = QualityReport()
        report.generate(real, synthetic, metadata, verbose=False)
    properties = dict(zip(report.get_properties()["Property"], report.get_properties()["Score"]))
    return {"score": float(report.get_score()), "column_shapes": float(properties["Column Shapes"]),
            "pair_trends": float(properties["Column Pair Trends"])}


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> dict[str, float]:
    scores = {}
    for column, kind in kinds.items():
        if kind == "id":
            continue
        if kind in NUMERIC_KINDS:
            a, b = _as_number(real[column]).dropna(), _as_number(synthetic[column]).dropna()
            scores[column] = 1.0 - _ks_statistic(a, b) if len(a) and len(b) else 0.0
        else:
            p = real[column].astype(str).value_counts(normalize=True)
            q = synthetic[column].astype(str).value_counts(normalize=True)
            scores[column] = 1.0 - 0.5 * p.subtract(q, fill_value=0).abs().sum()
    return scores


def adherence(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> dict[str, float]:
    """Share of synthetic numbers inside the real [min, max], and of synthetic categories seen in the real data."""
    inside, known = [], []
    for column, kind in kinds.items():
        if kind == "id":
            continue
        if kind in NUMERIC_KINDS:
            a, b = _as_number(real[column]), _as_number(synthetic[column]).dropna()
            inside.append(float(b.between(a.min(), a.max()).mean()) if len(b) else 1.0)
        else:
            known.append(float(synthetic[column].astype(str).isin(set(real[column].astype(str))).mean()))
    return {"fidelity_boundary_adherence": float(np.mean(inside)) if inside else float("nan"),
            "fidelity_category_adherence": float(np.mean(known)) if known else float("nan")}


def pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> dict[str, float]:
    columns = [c for c, k in kinds.items() if k != "id"]
    numeric = [c for c in columns if kinds[c] in NUMERIC_KINDS]
    scores = {}
    if len(numeric) > 1:
        r_real = _numeric_frame(real, numeric).corr().to_numpy()
        r_syn = _numeric_frame(synthetic, numeric).corr().to_numpy()
        for i, j in itertools.combinations(range(len(numeric)), 2):
            diff = abs(np.nan_to_num(r_real[i, j]) - np.nan_to_num(r_syn[i, j]))
            scores[f"{numeric[i]}|{numeric[j]}"] = 1.0 - diff / 2
    binned_real, binned_syn = _binned(real, synthetic, columns, kinds)
    for a, b in itertools.combinations(columns, 2):
        if a in numeric and b in numeric:
            continue
        p = pd.crosstab(binned_real[a], binned_real[b], normalize=True).stack()
        q = pd.crosstab(binned_syn[a], binned_syn[b], normalize=True).stack()
        scores[f"{a}|{b}"] = 1.0 - 0.5 * p.subtract(q, fill_value=0).abs().sum()
    return scores


def correlation_difference(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Synthetic minus real Pearson correlation over the numeric columns (for the heatmap)."""
    numeric = [c for c, k in kinds.items() if k in NUMERIC_KINDS]
    return _numeric_frame(synthetic, numeric).corr() - _numeric_frame(real, numeric).corr()


def detection_auc(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: dict[str, str],
                  seed: int = 0, max_rows: int = 5000, folds: int = 3) -> tuple[float, np.ndarray, np.ndarray]:
    """Cross-validated AUC of a gradient-boosting classifier telling real from synthetic.

    0.5: indistinguishable; 1.0: trivially told apart. Returns the AUC and the
    out-of-fold (labels, scores) for a ROC curve. Classes are balanced by
    subsampling so the AUC is not driven by size.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic), max_rows)
    real_rows = real.iloc[rng.choice(len(real), n, replace=False)]
    syn_rows = synthetic.iloc[rng.choice(len(synthetic), n, replace=False)]
    encoder = FeatureEncoder(kinds).fit(real)
    x = np.vstack([encoder.transform(real_rows), encoder.transform(syn_rows)])
    y = np.r_[np.zeros(n), np.ones(n)]
    classifier = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with model_threads(len(x)):
        proba = cross_val_predict(classifier, x, y, cv=splits, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba)), y, proba


def _ks_statistic(a: pd.Series, b: pd.Series) -> float:
    with warnings.catch_warnings():  # exact p-values overflow on ties; only the statistic is used
        warnings.simplefilter("ignore")
        return float(stats.ks_2samp(a, b).statistic)


def _numeric_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: _as_number(frame[c]) for c in columns})


def _binned(real, synthetic, columns, kinds):
    out_real, out_syn = {}, {}
    for column in columns:
        if kinds[column] in NUMERIC_KINDS:
            a, b = _as_number(real[column]), _as_number(synthetic[column])
            edges = np.unique(np.nanquantile(a, np.linspace(0, 1, 11)))
            out_real[column] = np.digitize(a, edges[1:-1]).astype(str)
            out_syn[column] = np.digitize(b, edges[1:-1]).astype(str)
            out_real[column][a.isna().to_numpy()] = "nan"
            out_syn[column][b.isna().to_numpy()] = "nan"
        else:
            out_real[column] = real[column].astype(str).to_numpy()
            out_syn[column] = synthetic[column].astype(str).to_numpy()
    return pd.DataFrame(out_real), pd.DataFrame(out_syn)
