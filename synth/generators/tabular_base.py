"""Template-method base for tabular generators.

The public `fit`/`sample`/`save`/`load` validate and translate through a
`TableCodec`; engines implement only `_fit`, `_sample`, `_save_state` and
`_load_state` over the codec's clean model frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Iterator

import numpy as np
import pandas as pd

from synth.codec import TableCodec
from synth.errors import InputError
from synth.generators.base import Engine, seed_everything
from synth.resources import ResourceEstimate, TabularCost, estimate_tabular
from synth.schema import Schema, infer_schema


class TabularGenerator(Engine, ABC):
    """A conditional generator of table rows (scikit-learn style: parameters in __init__)."""

    kind = "tables"
    cost: ClassVar[TabularCost]  # its cost model's constants, measured by benchmarks/tabular_engines.py

    def __init__(self, epochs: int = 300, batch_size: int = 500, seed: int = 0):
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed

    @classmethod
    def estimate(cls, table: pd.DataFrame, schema: Schema, epochs: int, batch_size: int) -> ResourceEstimate:
        """Peak memory and seconds of training on `table`, before any training."""
        return estimate_tabular(table, schema, cls.cost, epochs, batch_size)

    # ----- public API -------------------------------------------------
    def fit(self, table: pd.DataFrame, discrete_columns: list[str] | None = None,
            schema: Schema | None = None) -> "TabularGenerator":
        if table.empty:
            raise InputError("cannot fit a generator on an empty table")
        if self.epochs < 1 or self.batch_size < 2:
            raise InputError("epochs must be at least 1 and batch size at least 2")
        self.schema_ = schema or infer_schema(table, discrete_columns=discrete_columns)
        self.codec_ = TableCodec(self.schema_).fit(table)
        seed_everything(self.seed)
        self.loss_history_ = pd.DataFrame(columns=["epoch", "generator_loss", "discriminator_loss"])
        self._fit(self.codec_.encode(table), self.codec_.discrete_model_columns)
        return self

    def sample(self, n: int, conditions: dict | None = None, seed: int | None = None) -> pd.DataFrame:
        """Exactly `n` rows; each satisfies every `column: value` in `conditions`."""
        return next(self.sample_chunks(n, conditions, seed, chunk_rows=n))

    def sample_chunks(self, n: int, conditions: dict | None = None, seed: int | None = None,
                      chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """`n` rows as frames of at most `chunk_rows`, so that a draw of millions of rows never sits in
        memory at once. Seeded once: the first chunk equals `sample(chunk_rows)`; with more than one
        chunk, every chunk has the same column types (missing-capable where the column can miss)."""
        self._check_fitted()
        for count, what in ((n, "number of rows"), (chunk_rows, "chunk size")):
            if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
                raise InputError(f"{what} must be a positive integer, got {count!r}")
        model_conditions = self.codec_.encode_conditions(conditions or {})
        seed_everything(self.seed if seed is None else seed)
        accepted = forced = 0.0
        for start in range(0, int(n), int(chunk_rows)):
            size = min(int(chunk_rows), int(n) - start)
            # engines that reject or force rows to meet conditions overwrite these
            self.acceptance_rate_, self.forced_rows_ = 1.0, 0
            frame = self._sample(size, model_conditions)
            for column, value in model_conditions.items():
                assert (frame[column].astype(str) == value).all(), f"engine broke condition on {column}"
            accepted, forced = accepted + self.acceptance_rate_ * size, forced + self.forced_rows_
            self.acceptance_rate_, self.forced_rows_ = accepted / (start + size), int(forced)
            yield self.codec_.decode(frame.reset_index(drop=True), stable_types=n > chunk_rows)

    @staticmethod
    def served(draws: list[pd.DataFrame]) -> pd.DataFrame:
        """Several draws as one served answer (the MLflow model's output): their rows, in order."""
        return pd.concat(draws, ignore_index=True)

    def _metadata(self) -> dict:
        return {"codec": self.codec_.to_dict(), "loss_history": self.loss_history_.to_dict(orient="list")}

    def _restore(self, meta: dict) -> None:
        self.codec_ = TableCodec.from_dict(meta["codec"])
        self.schema_ = self.codec_.schema
        self.loss_history_ = pd.DataFrame(meta["loss_history"])

    # ----- for engines ------------------------------------------------
    @abstractmethod
    def _fit(self, model_frame: pd.DataFrame, discrete_columns: list[str]) -> None: ...

    @abstractmethod
    def _sample(self, n: int, conditions: dict[str, str]) -> pd.DataFrame: ...

    def _sample_by_rejection(self, draw: Callable[[int], pd.DataFrame], n: int,
                             conditions: dict[str, str], max_draws: int = 50) -> pd.DataFrame:
        """Draw batches, keep rows meeting every condition, until `n` are kept.

        Records the acceptance rate; a condition the model cannot meet in
        `max_draws` batches is a clear error, never a short or wrong sample.
        """
        kept, drawn = [], 0
        have = 0
        for _ in range(max_draws):
            want = max(n - have, 1)
            batch = draw(min(max(2 * want, 256), 200_000))
            drawn += len(batch)
            mask = np.ones(len(batch), dtype=bool)
            for column, value in conditions.items():
                mask &= batch[column].astype(str).to_numpy() == value
            kept.append(batch[mask])
            have += int(mask.sum())
            if have >= n:
                break
        self.acceptance_rate_ = have / max(drawn, 1)
        if have < n:
            raise InputError(
                f"the generator met the conditions {conditions} in only {have} of {drawn} draws "
                f"({self.acceptance_rate_:.2%}); train longer or relax the condition")
        return pd.concat(kept).head(n)

    def _check_fitted(self) -> None:
        if not hasattr(self, "codec_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")
