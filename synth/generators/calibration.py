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
from scipy.stats import norm

LEVELS = 101  # percentiles of the training column: its minimum, maximum and 99 points between
# normal scores at the training percentiles (0.5 % to 99.5 %: +-2.58): the quantile encoding's
# values and the space in which CorrelationAlignment works
NORMAL_LEVELS = norm.ppf(np.linspace(0.005, 0.995, LEVELS))
RAKING_ROUNDS = 20
# CorrelationAlignment: correlations are shrunk this far towards the identity, so that columns
# that are near copies of each other (radius and perimeter) still give an invertible matrix ...
ALIGNMENT_SHRINKAGE = 0.05
# ... and a class of the target gets its own map only with this many rows per aligned column in the
# training rows and in the draw the map is fitted on; rarer classes share the map of all rows
ALIGNMENT_ROWS_PER_COLUMN = 2


def percentiles(values: np.ndarray) -> list[float]:
    """A column's LEVELS training percentiles, its minimum and maximum included; missing values
    (NaN) left out."""
    return np.nanquantile(values, np.linspace(0, 1, LEVELS)).tolist()


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
        return cls({c: (np.nanquantile(generated[c].to_numpy(float), grid).tolist(), list(target))
                    for c, target in levels.items()})

    def transform(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        out = frame.copy()
        for column, (source, target) in self.maps.items():
            x = out[column].to_numpy(float)
            known = np.isfinite(x)  # missing values stay missing
            x[known] = quantile_map(x[known], np.asarray(source), np.asarray(target), rng)
            out[column] = x
        return out

    def to_dict(self) -> dict:
        return {"maps": self.maps}

    @classmethod
    def from_dict(cls, data: dict) -> "MarginalCalibration":
        return cls({k: (list(v[0]), list(v[1])) for k, v in data["maps"].items()})


def normal_scores(frame: pd.DataFrame, levels: dict[str, list[float]], rng: np.random.Generator) -> np.ndarray:
    """(rows, columns) normal scores of `frame`'s columns through their training percentiles; NaN
    where a value is missing. Tied training values (integer columns) are spread by `quantile_map`."""
    out = np.full((len(frame), len(levels)), np.nan)
    for j, (column, target) in enumerate(levels.items()):
        x = frame[column].to_numpy(float)
        known = np.isfinite(x)
        out[known, j] = quantile_map(x[known], np.asarray(target), NORMAL_LEVELS, rng)
    return out


def _moments(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation and the Cholesky factor of the shrunk correlation, each over the
    values present (pairwise for the correlation, then clipped to positive definite)."""
    frame = pd.DataFrame(scores)
    mean, std = frame.mean().fillna(0).to_numpy(), frame.std().fillna(1).replace(0, 1).to_numpy()
    corr = np.nan_to_num(frame.corr().to_numpy())
    np.fill_diagonal(corr, 1.0)
    values, vectors = np.linalg.eigh(corr)
    corr = (vectors * np.clip(values, 1e-6, None)) @ vectors.T
    corr = (1 - ALIGNMENT_SHRINKAGE) * corr + ALIGNMENT_SHRINKAGE * np.eye(len(corr))
    scale = np.sqrt(np.diag(corr))
    return mean, std, np.linalg.cholesky(corr / np.outer(scale, scale))


class CorrelationAlignment:
    """Per class of the target, one linear map of the continuous columns' normal scores that gives the
    generator's output the training rows' means, spreads and correlations, then back through the
    training percentiles.

    Calibration fixes each column alone; what a detector still saw on breast cancer was the joint
    structure: radius and perimeter, rank correlation 1.00 in the training rows, came out at 0.22.
    The map whitens the generator's scores with its own correlation and colours them with the
    training's (Cholesky factors), so whatever the generator learned beyond second moments (how the
    columns bend against each other, which discrete values go with which) is kept, rotated; rows
    are mapped one at a time by a fixed map, so conditioned and chunked draws get the same one. What
    is stored is per class a mean, a spread and a correlation matrix of the scores: aggregates, as a
    Gaussian copula stores. Not under differential privacy (the statistics are not private)."""

    def __init__(self, levels: dict[str, list[float]], by: str | None, maps: dict[str, dict]):
        self.levels, self.by, self.maps = levels, by, maps

    @classmethod
    def fit(cls, levels: dict[str, list[float]], real: pd.DataFrame, generated: pd.DataFrame,
            by: str | None, rng: np.random.Generator) -> "CorrelationAlignment":
        """Maps from `generated`'s moments onto `real`'s, per class of `by` where both have enough
        rows of it, and one map over all rows ("*") for the rest."""
        real_scores, generated_scores = normal_scores(real, levels, rng), normal_scores(generated, levels, rng)
        groups = {"*": (np.ones(len(real), bool), np.ones(len(generated), bool))}
        if by is not None:
            enough = ALIGNMENT_ROWS_PER_COLUMN * len(levels) + 10
            real_labels, generated_labels = real[by].astype(str).to_numpy(), generated[by].astype(str).to_numpy()
            for label in pd.unique(real_labels):
                in_real, in_generated = real_labels == label, generated_labels == label
                if in_real.sum() >= enough and in_generated.sum() >= enough:
                    groups[label] = (in_real, in_generated)
        maps = {}
        for label, (in_real, in_generated) in groups.items():
            target_mean, target_std, target_factor = _moments(real_scores[in_real])
            source_mean, source_std, source_factor = _moments(generated_scores[in_generated])
            # rows: whiten (inverse of the source factor), then colour (the target factor)
            maps[label] = {"source_mean": source_mean.tolist(), "source_std": source_std.tolist(),
                           "target_mean": target_mean.tolist(), "target_std": target_std.tolist(),
                           "matrix": np.linalg.solve(source_factor.T, target_factor.T).tolist()}
        return cls(levels, by, maps)

    def transform(self, frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        scores = normal_scores(frame, self.levels, rng)
        missing = np.isnan(scores)
        labels = (frame[self.by].astype(str).to_numpy() if self.by is not None
                  else np.full(len(frame), "*", dtype=object))
        aligned = np.empty_like(scores)
        for label in pd.unique(labels):
            rows = labels == label
            m = {k: np.asarray(v) for k, v in self.maps.get(label, self.maps["*"]).items()}
            z = np.where(missing[rows], m["source_mean"], scores[rows])
            aligned[rows] = ((z - m["source_mean"]) / m["source_std"]) @ m["matrix"] * m["target_std"] + m["target_mean"]
        out = frame.copy()
        for j, (column, target) in enumerate(self.levels.items()):
            values = quantile_map(aligned[:, j], NORMAL_LEVELS, np.asarray(target), rng)
            out[column] = np.where(missing[:, j], np.nan, values)  # missing values stay missing
        return out

    def to_dict(self) -> dict:
        return {"levels": self.levels, "by": self.by, "maps": self.maps}

    @classmethod
    def from_dict(cls, data: dict) -> "CorrelationAlignment":
        return cls(data["levels"], data["by"], data["maps"])
