"""Whether the synthetic rows give away training rows.

Every test compares against the real holdout, because fidelity scores alone
pass a noisy copy of the training data. Distances are Euclidean in the
`FeatureEncoder` space, nearest neighbours from an index (no all-pairs matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.neighbors import NearestNeighbors

from evaluation.features import FeatureEncoder

NEAR_COPY_PERCENTILE = 1.0  # near copy: closer to a training row than 1 % of holdout rows are


@dataclass
class Distances:
    """Nearest-neighbour distances that the privacy scores and plots share."""

    synthetic_to_train: np.ndarray
    synthetic_to_holdout: np.ndarray
    holdout_to_train: np.ndarray
    nndr: np.ndarray  # synthetic: nearest / second-nearest training distance


def nearest_distances(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                      kinds: dict[str, str]) -> Distances:
    encoder = FeatureEncoder(kinds).fit(train)
    x_train, x_hold, x_syn = (encoder.transform(f) for f in (train, holdout, synthetic))
    train_index = NearestNeighbors(n_neighbors=2).fit(x_train)
    syn_train, _ = train_index.kneighbors(x_syn)
    hold_train, _ = train_index.kneighbors(x_hold, n_neighbors=1)
    syn_hold, _ = NearestNeighbors(n_neighbors=1).fit(x_hold).kneighbors(x_syn)
    nndr = syn_train[:, 0] / np.maximum(syn_train[:, 1], 1e-12)
    return Distances(syn_train[:, 0], syn_hold[:, 0], hold_train[:, 0], nndr)


def exact_copies(train: pd.DataFrame, synthetic: pd.DataFrame, columns: list[str]) -> int:
    """Synthetic rows identical to some training row in every modelled column."""
    def keys(frame):
        normalised = frame[columns].apply(lambda s: s.map(_canonical))
        return pd.util.hash_pandas_object(normalised, index=False)

    return int(keys(synthetic).isin(set(keys(train))).sum())


def _canonical(value) -> str:
    if isinstance(value, (float, np.floating)) and not pd.isna(value):
        return repr(round(float(value), 9))
    return "nan" if pd.isna(value) else str(value)


def privacy_scores(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                   kinds: dict[str, str], distances: Distances | None = None) -> dict[str, float]:
    columns = [c for c, k in kinds.items() if k != "id"]
    d = distances or nearest_distances(train, holdout, synthetic, kinds)
    n_syn = len(d.synthetic_to_train)
    threshold = np.percentile(d.holdout_to_train, NEAR_COPY_PERCENTILE)
    near_rate = float(np.mean(d.synthetic_to_train < threshold))
    chance = NEAR_COPY_PERCENTILE / 100
    copies = exact_copies(train, synthetic, columns)
    closer = (d.synthetic_to_train < d.synthetic_to_holdout) + 0.5 * (d.synthetic_to_train == d.synthetic_to_holdout)
    expected = len(train) / (len(train) + len(holdout))
    # The share is estimated from every synthetic row, but its uncertainty also comes from the one
    # random train/holdout split, which more synthetic rows do not shrink. A binomial test over all
    # rows ignores that and rejects any generator once enough rows are requested; capping the
    # effective sample size at the holdout size keeps the verdict independent of the request size.
    share = float(closer.mean())
    n_eff = min(n_syn, len(holdout))
    test = stats.binomtest(int(round(share * n_eff)), n_eff, expected, alternative="greater")
    return {
        "privacy_exact_copies": copies,
        "privacy_exact_copy_rate": copies / n_syn,
        "privacy_near_copy_rate": near_rate,
        "privacy_near_copy_ratio_to_chance": near_rate / chance,
        "privacy_dcr_closer_to_train_share": share,
        "privacy_dcr_expected_share": expected,
        "privacy_dcr_test_rows": n_eff,
        "privacy_dcr_pvalue": float(test.pvalue),
        "privacy_dcr_synthetic_median": float(np.median(d.synthetic_to_train)),
        "privacy_dcr_holdout_median": float(np.median(d.holdout_to_train)),
        "privacy_nndr_mean": float(np.mean(d.nndr)),
    }
