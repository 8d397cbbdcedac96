"""Marginal calibration: the generator's dependence structure, the training data's marginals.

On small tables a GAN learns which rows go together long before it learns each column's shape:
on breast cancer (398 rows) many columns came out with a quarter of their values piled on the
mixture modes' edges, and a detector told synthetic from real rows on single columns (AUC ~0.8).
After training, each continuous column gets one monotone map from the generator's own output
distribution (quantiles of a large unconditional draw) to the training distribution (its
percentiles), applied to every later draw. The map is fixed, so conditioned draws keep their shift
against the whole table; rows keep their order within each column, so the learned dependence is
untouched. What is stored is 101 percentiles per column, as a copula model would store a marginal;
values tied in the generator's output (a pile) are spread over the quantile range they cover.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVELS = 101  # percentiles of the training column: its minimum, maximum and 99 points between
RAKING_ROUNDS = 20


def percentiles(values: np.ndarray) -> list[float]:
    """A column's LEVELS training percentiles, its minimum and maximum included."""
    return np.quantile(values, np.linspace(0, 1, LEVELS)).tolist()


def quantile_map(x: np.ndarray, source: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each value's quantile under `source` (sorted quantiles at even levels), then the value of
    `target` (the same, for the distribution mapped onto) at that quantile. Values tied over several
    source levels (a pile) are spread at random over the levels they cover."""
    last = len(source) - 1
    lo, hi = np.searchsorted(source, x, "left"), np.searchsorted(source, x, "right")
    left = source[np.clip(lo - 1, 0, last)]
    right = source[np.clip(lo, 0, last)]
    fraction = np.where(right > left, (x - left) / np.where(right > left, right - left, 1), 0.0)
    position = np.clip(lo - 1 + fraction, 0, last)
    tied = hi - lo >= 2
    position = np.where(tied, lo + rng.random(len(x)) * (hi - 1 - lo), position)
    return np.interp(position / last, np.linspace(0, 1, len(target)), target)


def raked_selection(codes: np.ndarray, frequencies: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n` of the rows of `codes` (rows, columns of category codes) whose category shares
    come close to `frequencies` (one vector per column): raking weights (iterative proportional
    fitting over the columns' margins), then `n` distinct rows drawn with those weights. Rows are
    kept whole, so what each row holds is the generator's own; only how often each kind of row
    appears moves. The discrete columns' counterpart of the continuous columns' calibration."""
    if n >= len(codes):
        return rng.permutation(len(codes))
    weights = np.ones(len(codes))
    for _ in range(RAKING_ROUNDS):
        for column, target in enumerate(frequencies):
            shares = np.bincount(codes[:, column], weights=weights, minlength=len(target)) / weights.sum()
            factor = np.divide(target, shares, out=np.zeros(len(target)), where=shares > 0)
            weights = weights * factor[codes[:, column]]
    # inclusion probabilities proportional to the weights (capped at 1, the rest shared out again),
    # then systematic sampling over a random order: exactly n rows, each with its probability
    inclusion = np.zeros(len(weights))
    free = np.ones(len(weights), dtype=bool)
    while True:
        inclusion[free] = (n - (~free).sum()) * weights[free] / weights[free].sum()
        over = free & (inclusion >= 1)
        if not over.any():
            break
        inclusion[over], free[over] = 1.0, False
    order = rng.permutation(len(weights))
    cumulative = np.cumsum(inclusion[order])
    picks = np.searchsorted(cumulative, rng.random() + np.arange(n), side="right")
    return rng.permutation(order[np.minimum(picks, len(order) - 1)])


class MarginalCalibration:
    """Per column, generator output quantiles -> training quantiles, at 1,001 / 101 levels."""

    def __init__(self, maps: dict[str, tuple[list[float], list[float]]] | None = None):
        self.maps = maps or {}

    @staticmethod
    def training_levels(real: pd.DataFrame, columns: list[str]) -> dict[str, list[float]]:
        """Each column's training percentiles: all that calibration keeps of the real rows."""
        return {c: percentiles(real[c].to_numpy(float)) for c in columns}

    @classmethod
    def fit(cls, levels: dict[str, list[float]], generated: pd.DataFrame) -> "MarginalCalibration":
        """Maps from `generated`'s quantiles onto the training percentiles in `levels`."""
        grid = np.linspace(0, 1, 10 * (LEVELS - 1) + 1)
        return cls({c: (np.quantile(generated[c].to_numpy(float), grid).tolist(), list(target))
                    for c, target in levels.items()})

    def transform(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        out = frame.copy()
        for column, (source, target) in self.maps.items():
            out[column] = quantile_map(out[column].to_numpy(float), np.asarray(source), np.asarray(target), rng)
        return out

    def to_dict(self) -> dict:
        return {"maps": self.maps}

    @classmethod
    def from_dict(cls, data: dict) -> "MarginalCalibration":
        return cls({k: (list(v[0]), list(v[1])) for k, v in data["maps"].items()})
