"""The `ctgan` package as an engine: the reference implementation and our baseline.

Licence note: ctgan is under the Business Source License 1.1; it stays an
optional baseline, not the engine we ship as a service.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synth.generators.tabular_base import TabularGenerator
from synth.resources import TabularCost

STATE_FILE = "ctgan.pt"


class CTGANGenerator(TabularGenerator):
    engine = "ctgan"
    # a dense one-hot float copy of the table; about 2x tabgan per epoch (benchmarks/tabular_engines.py)
    cost = TabularCost(table_copies=25, seconds_factor=2.0)

    def __init__(self, epochs: int = 300, batch_size: int = 500, seed: int = 0, pac: int = 10):
        super().__init__(epochs=epochs, batch_size=batch_size, seed=seed)
        self.pac = pac

    def _fit(self, model_frame: pd.DataFrame, discrete_columns: list[str]) -> None:
        from ctgan import CTGAN

        # ctgan needs batch_size divisible by pac, and a batch no bigger than the table
        batch = min(self.batch_size, len(model_frame))
        batch = max(self.pac, batch - batch % self.pac)
        model = CTGAN(epochs=self.epochs, batch_size=batch, pac=self.pac, enable_gpu=False, verbose=False)
        model.set_random_state(self.seed)
        model.fit(model_frame, discrete_columns=discrete_columns)
        # The data sampler keeps, per category, the indices of training rows: with the
        # fitted transformer they rebuild the training data's discrete columns. Sampling
        # never needs them.
        model._data_sampler._rid_by_cat_cols = None
        self._model = model
        losses = model.loss_values
        self.loss_history_ = pd.DataFrame({
            "epoch": losses["Epoch"].astype(int).to_numpy(),
            "generator_loss": losses["Generator Loss"].astype(float).to_numpy(),
            "discriminator_loss": losses.iloc[:, 2].astype(float).to_numpy(),
        })

    def _sample(self, n: int, conditions: dict[str, str]) -> pd.DataFrame:
        steer = next(iter(conditions.items()), None)
        return self._sample_by_rejection(lambda k: self._draw(k, steer), n, conditions)

    @torch.no_grad()
    def _draw(self, n: int, steer: tuple[str, str] | None) -> pd.DataFrame:
        """ctgan's own sampling loop, with a correctly placed condition vector.

        ctgan's `sample(condition_column=…)` offsets the one-hot by the column's
        position in the data matrix instead of in the condition vector, so it
        steers only when the two coincide.
        """
        model = self._model
        sampler = model._data_sampler
        batch = model._batch_size
        out = []
        for _ in range(n // batch + 1):
            noise = torch.randn(batch, model._embedding_dim)
            if steer is not None:
                info = model._transformer.convert_column_name_value_to_id(*steer)
                cond = np.zeros((batch, sampler.dim_cond_vec()), dtype="float32")
                cond[:, sampler._discrete_column_cond_st[info["discrete_column_id"]] + info["value_id"]] = 1
            else:
                cond = sampler.sample_original_condvec(batch)
            if cond is not None:
                noise = torch.cat([noise, torch.from_numpy(cond)], dim=1)
            out.append(model._apply_activate(model._generator(noise)).numpy())
        frame = model._transformer.inverse_transform(np.concatenate(out)[:n])
        return frame

    def _save_state(self, directory: Path) -> None:
        torch.save(self._model, directory / STATE_FILE)

    def _load_state(self, directory: Path) -> None:
        self._model = torch.load(directory / STATE_FILE, weights_only=False)
