"""Our conditional tabular GAN: the CTGAN method (Xu et al., NeurIPS 2019), written for speed.

Written from the paper: a conditional vector with training-by-sampling, a PacGAN
discriminator and WGAN-GP; continuous columns by the paper's mode-specific
normalisation or, by default, as normal scores through the training percentiles
(`continuous_encoding`; see mode_encoding.py), and pac and batch scaled down on
small tables. What differs from the ctgan package in its own method is where the
time goes:

- the encoded table lives on the device as alphas + integer codes; each batch's
  one-hot rows are one scatter, and conditions and row picks are tensor draws;
- one fused activation (tanh on alphas, Gumbel-softmax over every span at once
  through a segment softmax), one gathered cross-entropy for the condition loss;
- no host-device synchronisation inside an epoch; the generator is not
  back-propagated in the discriminator step, nor the discriminator's weights in
  the generator step;
- sampling in evaluation mode under `no_grad`, conditioned natively on any
  discrete column, exact for several at once.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from synth import progress
from synth.errors import InputError
from synth.generators.base import frozen, resolve_device
from synth.codec import placeholders_as_missing
from synth.generators.calibration import CorrelationAlignment, MarginalCalibration, raked_selection
from synth.generators.mode_encoding import EncodedTable, ModeSpecificEncoder
from synth.generators.tabular_base import TabularGenerator
from synth.resources import TabularCost

STATE_FILE = "tabgan.pt"
ENCODER_FILE = "tabgan_encoder.json"
CALIBRATION_FILE = "tabgan_calibration.json"
ALIGNMENT_FILE = "tabgan_alignment.json"
# Unconditional rows drawn to learn the generator's own marginals: ten per training row, so that
# their quantiles are ~3x less noisy than the training percentiles they are mapped onto, within
# these bounds. On kidney (280 rows) 5,000 rows scored the same SDMetrics quality as 20,000 (0.884
# vs 0.884) in a quarter of the time (0.28 vs 1.18 s, one thread), a cost paid after every chunk
# of the benchmark's time-to-quality loop.
CALIBRATION_ROWS_PER_TRAINING_ROW = 10
CALIBRATION_ROWS = (5_000, 20_000)
RAKING_POOL = 4  # an unconditional draw of n rows is raked from this many times n generated rows ...
RAKING_PIECE_ROWS = 25_000  # ... n at most this many at a time, so that the pool's memory is bounded
GUMBEL_TAU = 0.2
# Training draws its latent and Gumbel noise rows from a pool of this many batches, redrawn every
# epoch, when an epoch has more steps than that: drawing each step's noise anew took ~7 % of a step
# on CPU (torch's CPU generator is slow). Sampling always draws fresh noise.
NOISE_POOL_BATCHES = 8
GRADIENT_PENALTY = 10.0
VALIDATION_ROWS = 5000
MIN_STEPS_PER_EPOCH = 4  # small tables: the batch shrinks so that an epoch is at least this many steps
# ... and pac shrinks so that the discriminator still scores this many packs a step, as at the
# paper's batch 500 and pac 10: at a 60-row batch, pac 10 left it 6 samples a step (see _batch_and_pac)
MIN_PACKS_PER_STEP = 50
ALPHA_BINS = 20  # the early-stopping score's histogram of each continuous value on [-1, 1]
SAMPLE_CHUNK_ROWS = 4096  # bounds the activations held while sampling


class Residual(nn.Module):
    """Linear -> BatchNorm -> ReLU, concatenated with its input (the paper's generator block)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


def build_generator(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers, width = [], in_dim
    for size in hidden:
        layers.append(Residual(width, size))
        width += size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Dropout(nn.Module):
    """Inverted dropout whose mask is a thresholded uniform draw: the same distribution as
    nn.Dropout, about 1.8x faster on CPU for these small activations (Bernoulli sampling is slow)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * ((torch.rand_like(x) >= self.p).to(x.dtype) / (1 - self.p))


class PacDiscriminator(nn.Module):
    """Scores `pac` rows at once (PacGAN), which penalises mode collapse."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], pac: int):
        super().__init__()
        self.pac = pac
        layers, width = [], in_dim * pac
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), Dropout(0.5)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, self.pac * x.shape[1]))


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, pac: int) -> torch.Tensor:
    """WGAN-GP on points between real and fake packs (one mixing weight per pack)."""
    width = real.shape[1]
    weight = torch.rand(real.shape[0] // pac, 1, 1, device=real.device).expand(-1, pac, width).reshape(real.shape)
    mixed = (weight * real + (1 - weight) * fake).requires_grad_(True)
    grads = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)[0]
    return GRADIENT_PENALTY * ((grads.reshape(-1, pac * width).norm(2, dim=1) - 1) ** 2).mean()


def cumulative(weights: torch.Tensor) -> torch.Tensor:
    """Row-wise cumulative shares of non-negative weights (for inverse-CDF draws)."""
    return torch.cumsum(weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12), dim=1).float()


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """-log(-log U): on CPU several times faster than `exponential_`."""
    return -torch.log(-torch.log(torch.rand(like.shape, device=like.device).clamp_(1e-12, 1 - 1e-7)))


class OutputLayout:
    """Where each span sits in the networks' vectors; built from encoder metadata only."""

    def __init__(self, encoder: ModeSpecificEncoder, device: torch.device):
        widths = encoder.span_widths
        self.n_continuous = encoder.n_continuous
        self.n_spans = len(widths)
        self.width = encoder.output_dim
        offsets = self.n_continuous + np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
        self.span_offsets = torch.as_tensor(offsets, device=device)
        self.segment = torch.repeat_interleave(torch.arange(self.n_spans, device=device),
                                               torch.as_tensor(widths, device=device))
        self.span_positions, self.span_mask = self._padded(offsets, widths, device)
        discrete = encoder.discrete_span_ids
        cond_widths = [widths[s] for s in discrete]
        self.cond_dim = int(sum(cond_widths))
        self.n_conditions = len(discrete)
        self.cond_offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(cond_widths)[:-1]]).astype(np.int64)
                                            if discrete else np.zeros(0, np.int64), device=device)
        self.cond_positions, self.cond_mask = self._padded(offsets[discrete], cond_widths, device)
        frequencies = torch.zeros(self.cond_positions.shape, dtype=torch.float64)
        for j, info in enumerate(encoder.discrete_):
            frequencies[j, : len(info["frequencies"])] = torch.as_tensor(info["frequencies"])
        self.sample_cdf = cumulative(frequencies).to(device)
        self.cond_widths = torch.as_tensor(cond_widths, dtype=torch.long, device=device)

    @staticmethod
    def _padded(offsets, widths, device):
        widest = max(widths, default=1)
        positions = torch.zeros(len(widths), widest, dtype=torch.long)
        mask = torch.zeros(len(widths), widest, dtype=torch.bool)
        for i, (start, width) in enumerate(zip(offsets, widths)):
            positions[i, :width] = torch.arange(int(start), int(start) + width)
            mask[i, :width] = True
        return positions.to(device), mask.to(device)

    def draw_conditions(self, n: int, cdf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A discrete column uniformly, then one of its categories from `cdf`, per row."""
        device = cdf.device
        column = torch.randint(self.n_conditions, (n,), device=device)
        u = torch.rand(n, 1, device=device)
        category = torch.searchsorted(cdf[column], u, right=True).squeeze(1)
        return column, torch.minimum(category, self.cond_widths[column] - 1)

    def cond_vector(self, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        cond = torch.zeros(len(column), self.cond_dim, device=column.device)
        if self.cond_dim == 0:
            return cond
        return cond.scatter_(1, (self.cond_offsets[column] + category).unsqueeze(1), 1.0)

    def activate(self, raw: torch.Tensor, gumbel: torch.Tensor | None = None) -> torch.Tensor:
        """tanh on the alphas; Gumbel-softmax over every span in one segment softmax (noise drawn
        here unless given)."""
        logits = raw[:, self.n_continuous:]
        y = (logits + (gumbel_noise(logits) if gumbel is None else gumbel)) / GUMBEL_TAU
        segment = self.segment.expand(len(y), -1)
        with torch.no_grad():
            peak = y.new_full((len(y), self.n_spans), float("-inf")).scatter_reduce(1, segment, y, "amax")
        e = torch.exp(y - peak.gather(1, segment))
        total = e.new_zeros(len(y), self.n_spans).scatter_add(1, segment, e)
        return torch.cat([torch.tanh(raw[:, : self.n_continuous]), e / total.gather(1, segment)], dim=1)

    def condition_loss(self, raw: torch.Tensor, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        logits = raw.gather(1, self.cond_positions[column]).float()
        return F.cross_entropy(logits.masked_fill(~self.cond_mask[column], float("-inf")), category)

    def decode(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Alphas and one sampled code per span (argmax after Gumbel noise = a softmax draw)."""
        logits = raw[:, self.n_continuous:]
        y = logits + gumbel_noise(logits)
        padded = torch.cat([y, y.new_full((len(y), 1), float("-inf"))], dim=1)
        index = torch.where(self.span_mask, self.span_positions - self.n_continuous, logits.shape[1])
        codes = padded[:, index].argmax(dim=2)
        return torch.tanh(raw[:, : self.n_continuous]), codes


class TargetClassifier(nn.Module):
    """CTAB-GAN+'s auxiliary classifier (Zhao et al. 2022): predicts the target from a row's other
    columns. Trained on real rows only; the generator is then pushed to make rows whose features
    predict their own target, which is what a model trained on synthetic rows has to learn."""

    def __init__(self, layout: OutputLayout, target_span: int, hidden: tuple[int, ...]):
        super().__init__()
        start = int(layout.span_offsets[target_span])
        self.target = slice(start, start + int(layout.segment.eq(target_span).sum()))
        keep = torch.ones(layout.width)
        keep[self.target] = 0.0
        self.register_buffer("keep", keep)
        layers, width = [], layout.width
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), Dropout(0.5)]
            width = size
        layers.append(nn.Linear(width, self.target.stop - self.target.start))
        self.net = nn.Sequential(*layers)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.net(rows * self.keep)

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against each row's own target (the one-hot, or the generator's draw)."""
        return F.cross_entropy(self(rows), rows[:, self.target].detach().argmax(dim=1))


class TrainingRows:
    """The encoded training table on the device, with per-category row lists for training-by-sampling.

    Lives only while training: it is never saved.
    """

    def __init__(self, encoded: EncodedTable, layout: OutputLayout, discrete_span_ids: list[int], device):
        self.alphas = torch.as_tensor(encoded.alphas, device=device)
        self.codes = torch.as_tensor(encoded.codes, device=device)
        self.n = len(self.codes)
        self.layout = layout
        if discrete_span_ids:
            discrete_codes = self.codes[:, discrete_span_ids].T  # (columns, rows)
            self.order = torch.argsort(discrete_codes, dim=1, stable=True)
            widest = layout.cond_positions.shape[1]
            counts = torch.stack([torch.bincount(c, minlength=widest) for c in discrete_codes])
            self.counts = counts
            self.starts = torch.cumsum(counts, dim=1) - counts
            # training-by-sampling: categories drawn by log-frequency, so rare ones are seen
            self.condition_cdf = cumulative(torch.log1p(counts.double()))

    def rows_for(self, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """A random training row holding `category` in `column`, per entry."""
        if self.layout.n_conditions == 0:
            return torch.randint(self.n, (len(column),), device=self.codes.device)
        count = self.counts[column, category]
        pick = self.starts[column, category] + (torch.rand(len(column), device=count.device) * count).long()
        return self.order[column, pick]

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(rows), self.layout.width, device=self.codes.device)
        out[:, : self.layout.n_continuous] = self.alphas[rows]
        return out.scatter_(1, self.layout.span_offsets + self.codes[rows], 1.0)


def span_frequencies(codes: torch.Tensor, layout: OutputLayout) -> torch.Tensor:
    """Share of rows in each position of each span (modes and categories), one vector."""
    flat = (layout.span_offsets + codes - layout.n_continuous).reshape(-1)
    return torch.bincount(flat, minlength=layout.width - layout.n_continuous).float() / len(codes)


def alpha_histograms(alphas: torch.Tensor) -> torch.Tensor:
    """Share of rows in each of ALPHA_BINS bins of each continuous value, (columns, bins): the
    continuous columns' part of the early-stopping score (under the quantile encoding every column
    has one mode, so span frequencies say nothing about it)."""
    bins = ((alphas.clamp(-1, 1 - 1e-6) + 1) * (ALPHA_BINS / 2)).long()
    offsets = torch.arange(alphas.shape[1], device=alphas.device) * ALPHA_BINS
    counts = torch.bincount((bins + offsets).reshape(-1), minlength=alphas.shape[1] * ALPHA_BINS)
    return counts.float().reshape(alphas.shape[1], ALPHA_BINS) / max(1, len(alphas))


def continuous_encoding_for(requested: str, private: bool) -> str:
    """The encoder's `continuous_encoding` for an engine's setting: "auto" is "quantile", or "modes"
    under DP, since the quantile encoding keeps training percentiles that DP does not cover."""
    if requested == "auto":
        return "modes" if private else "quantile"
    if requested == "quantile" and private:
        raise InputError("the quantile encoding keeps training percentiles, which differential privacy "
                         "does not cover; use continuous_encoding: modes (or auto) with dp_epsilon")
    return requested


class TabGAN(TabularGenerator):
    """The default tabular engine. Parameters follow the paper's defaults but the epochs: 200, not
    300; with the correlation alignment, 200 scored as well as 300 on the development split (breast
    cancer, maternal health, 1k admissions; 3 seeds) for two thirds of the CPU."""

    engine = "tabgan"
    supports_dp = True
    supports_early_stopping = True
    cost = TabularCost(table_copies=8)  # the reference of the multiply-add model (synth/resources.py)

    def __init__(self, epochs: int = 200, batch_size: int = 500, seed: int = 0, pac: int = 10,
                 embedding_dim: int = 128, generator_dims: tuple[int, ...] = (256, 256),
                 discriminator_dims: tuple[int, ...] = (256, 256), learning_rate: float = 2e-4,
                 max_modes: int = 10, mixture_rows: int = 5000, precision: str = "fp32",
                 compile: bool = False, device: str = "auto", patience: int | None = None,
                 time_budget_s: float | None = None, validate_every: int = 5,
                 dp_epsilon: float | None = None, dp_delta: float = 1e-5, dp_max_grad_norm: float = 1.0,
                 calibrate: bool = True, target_loss: float = 1.0,
                 classifier_dims: tuple[int, ...] = (128,), classifier_rows: int = 128,
                 continuous_encoding: str = "auto", rake: bool = True, align_correlations: bool = True):
        super().__init__(epochs=epochs, batch_size=batch_size, seed=seed)
        self.pac = pac
        self.embedding_dim = embedding_dim
        self.generator_dims = tuple(generator_dims)
        self.discriminator_dims = tuple(discriminator_dims)
        self.learning_rate = learning_rate
        self.max_modes = max_modes
        self.mixture_rows = mixture_rows
        self.precision = precision
        self.compile = compile
        self.device = device
        self.patience = patience
        self.time_budget_s = time_budget_s
        self.validate_every = validate_every
        self.dp_epsilon = dp_epsilon
        self.dp_delta = dp_delta
        self.dp_max_grad_norm = dp_max_grad_norm
        self.calibrate = calibrate
        self.target_loss = target_loss
        self.classifier_dims = tuple(classifier_dims)
        # rows the target classifier sees per step (real for its own step, generated for the
        # generator's loss): at batch 500 on the 30k table its passes were 0.15-0.2 s of a 1.2 s epoch
        self.classifier_rows = classifier_rows
        # "auto": "quantile" (normal scores through the training percentiles), or "modes" (the
        # paper's mode-specific normalisation) under DP, since the percentiles are not private
        self.continuous_encoding = continuous_encoding
        # unconditional draws keep each discrete column's training shares (raked_selection)
        self.rake = rake
        # the continuous columns' means, spreads and correlations per class of the target are mapped
        # onto the training rows' after calibration (CorrelationAlignment); not under DP
        self.align_correlations = align_correlations

    # ----- training ---------------------------------------------------
    def _fit(self, model_frame: pd.DataFrame, discrete_columns: list[str]) -> None:
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise InputError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.batch_size < self.pac:
            raise InputError(f"batch size {self.batch_size} is smaller than pac {self.pac}")
        encoding = continuous_encoding_for(self.continuous_encoding, private=self.dp_epsilon is not None)
        started = time.perf_counter()
        self.device_ = resolve_device(self.device)
        self.encoder_ = ModeSpecificEncoder(self.max_modes, self.mixture_rows, self.seed, encoding).fit(
            model_frame, discrete_columns)
        self.layout_ = OutputLayout(self.encoder_, self.device_)
        self._rows = TrainingRows(self.encoder_.transform(model_frame), self.layout_,
                                  self.encoder_.discrete_span_ids, self.device_)
        self.timings_ = {"preprocess_s": time.perf_counter() - started, "epoch_s": []}
        self.batch_, self.pac_ = self._batch_and_pac()
        self._build_networks()
        self.calibration_ = self.alignment_ = None
        if self.dp_epsilon is not None:
            self._fit_private()  # neither map: the training percentiles are not differentially private
        else:
            if self.calibrate or self.align_correlations:
                continuous = self._continuous_names()
                present = self._present(model_frame)
                self._calibration_levels = MarginalCalibration.training_levels(present, continuous)
                self._training_frame = present  # in memory for the refits after partial_fit; never saved
            self.partial_fit(self.epochs)

    def _build_networks(self) -> None:
        layout = self.layout_
        self.generator_ = build_generator(self.embedding_dim + layout.cond_dim, self.generator_dims,
                                          layout.width).to(self.device_)
        self.discriminator_ = PacDiscriminator(layout.width + layout.cond_dim, self.discriminator_dims,
                                               self.pac_).to(self.device_)
        adam = dict(lr=self.learning_rate, betas=(0.5, 0.9), weight_decay=1e-6)
        self._optimizer_g = torch.optim.Adam(self.generator_.parameters(), **adam)
        self._optimizer_d = torch.optim.Adam(self.discriminator_.parameters(), **adam)
        # torch.compile wraps the networks, not the steps (inductor fails on the step functions on
        # CPU with torch 2.13); on this 2-core CPU it made epochs slower, so it is off by default
        self._classifier = None
        target = self.schema_.target
        if self.target_loss and target and self.dp_epsilon is None:  # it reads real rows: not under DP
            span = self.encoder_.span_index(target)
            self._classifier = TargetClassifier(layout, span, self.classifier_dims).to(self.device_)
            self._optimizer_c = torch.optim.Adam(self._classifier.parameters(), **adam)
        self._generator_net = torch.compile(self.generator_) if self.compile else self.generator_
        self._discriminator_net = torch.compile(self.discriminator_) if self.compile else self.discriminator_
        self.best_score_ = float("-inf")
        self.validation_scores_: list[float] = []
        self._best_state = None

    def partial_fit(self, epochs: int) -> "TabGAN":
        """Train `epochs` more epochs on the table given to `fit` (the benchmark's time-to-quality loop)."""
        if not hasattr(self, "_rows"):
            raise RuntimeError("partial_fit continues a fit in this process; call fit first")
        if self.dp_epsilon is not None:
            raise RuntimeError("a differentially private model is trained once, by fit, within its budget")
        batch = self.batch_
        steps = max(1, self._rows.n // batch)
        started = time.perf_counter()
        done = len(self.loss_history_)
        history, stale = [], 0
        self.generator_.train()
        self.discriminator_.train()
        for epoch in range(done, done + epochs):
            epoch_start = time.perf_counter()
            self._redraw_noise_pool(batch, steps)
            totals = torch.zeros(2, device=self.device_)
            for _ in range(steps):
                totals[1] += self._discriminator_step(batch).detach()
                totals[0] += self._generator_step(batch).detach()
            g_loss, d_loss = (totals / steps).tolist()  # the one synchronisation per epoch
            history.append({"epoch": epoch, "generator_loss": g_loss, "discriminator_loss": d_loss})
            self.timings_["epoch_s"].append(time.perf_counter() - epoch_start)
            validated = self.patience is not None and (epoch + 1) % self.validate_every == 0
            if validated:
                stale = 0 if self._keep_if_best() else stale + 1
            progress.update("train", epoch + 1, done + epochs, unit="epoch", generator_loss=g_loss,
                            discriminator_loss=d_loss,
                            **({"validation": self.validation_scores_[-1]} if self.validation_scores_ else {}))
            if validated and stale >= self.patience:
                break
            if self.time_budget_s is not None and time.perf_counter() - started >= self.time_budget_s:
                break
        self._noise_pool = None
        self.stopped_epoch_ = done + len(history)
        if self._best_state is not None:
            self.generator_.load_state_dict(self._best_state)
        self.loss_history_ = pd.DataFrame(self.loss_history_.to_dict(orient="records") + history,
                                          columns=["epoch", "generator_loss", "discriminator_loss"])
        if self.calibrate or self.align_correlations:
            self._calibrate()
        return self

    def _calibrate(self) -> None:
        """Map the generator's marginals, then (on the calibrated draw) its correlations, as trained so
        far, onto the training rows': after every `partial_fit`, since maps fitted to an earlier
        generator no longer match its output (the benchmark's time-to-quality loop scored later
        chunks through the first chunk's map)."""
        rng = np.random.default_rng(self.seed)
        rows = int(np.clip(CALIBRATION_ROWS_PER_TRAINING_ROW * self._rows.n, *CALIBRATION_ROWS))
        generated = self._present(self.encoder_.inverse_transform(*self._unconditional(rows, rng)))
        levels = self._calibration_levels
        if self.calibrate:
            self.calibration_ = MarginalCalibration.fit(levels, generated)
            generated = self.calibration_.transform(generated, rng)
        if self.align_correlations and levels:
            target = self.schema_.target
            by = target if target in [d["name"] for d in self.encoder_.discrete_] else None
            self.alignment_ = CorrelationAlignment.fit(levels, self._training_frame, generated, by, rng)

    def _batch_and_pac(self) -> tuple[int, int]:
        """The batch, small enough for MIN_STEPS_PER_EPOCH steps an epoch, and pac, small enough for
        MIN_PACKS_PER_STEP packs a step; the batch a multiple of pac. At batch 500 a 398-row table got
        one optimiser step per epoch (300 in all), and its generator came out with holdout TSTR AUC
        0.68 against 0.97 at batch 90. At batch 60 and pac 10 the discriminator scored 6 packs a
        step; pac 1 there lowered the detection AUC on four small tables (development split)."""
        batch = min(self.batch_size, self._rows.n // MIN_STEPS_PER_EPOCH)
        pac = max(1, min(self.pac, batch // MIN_PACKS_PER_STEP))
        return max(pac, batch - batch % pac), pac

    # ----- differentially private training ----------------------------
    def _fit_private(self) -> None:
        """DP-SGD on the discriminator (opacus), the only network that reads real rows.

        Changes from the non-private method, each needed for the guarantee: real rows
        arrive by Poisson sampling (no training-by-sampling, whose per-category row
        lists depend on the data), pac = 1 so each per-sample gradient is one row's,
        the discriminator uses the logistic loss (the gradient penalty's double backward
        has no per-sample clipping), and the category frequencies used for sampling are
        released with Laplace noise from 10 % of the budget. Not covered by epsilon:
        the column metadata (category lists, mixture modes), as in other DP-CTGANs.
        """
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        frequency_epsilon = 0.1 * self.dp_epsilon
        self._release_noisy_frequencies(frequency_epsilon)
        layout, rows = self.layout_, self._rows
        discriminator = PacDiscriminator(layout.width + layout.cond_dim, self.discriminator_dims, 1).to(self.device_)
        optimizer = torch.optim.Adam(discriminator.parameters(), lr=self.learning_rate, betas=(0.5, 0.9))
        # Poisson batches of at most a tenth of the rows: privacy amplification by subsampling needs a
        # small sampling rate (a batch of every row would need far more noise for the same epsilon)
        loader = DataLoader(TensorDataset(torch.arange(rows.n)), batch_size=max(1, min(self.batch_size, rows.n // 10)))
        privacy = PrivacyEngine(accountant="rdp", secure_mode=False)
        discriminator, optimizer, loader = privacy.make_private_with_epsilon(
            module=discriminator, optimizer=optimizer, data_loader=loader, epochs=self.epochs,
            target_epsilon=self.dp_epsilon - frequency_epsilon, target_delta=self.dp_delta,
            max_grad_norm=self.dp_max_grad_norm)
        discrete_spans = torch.as_tensor(self.encoder_.discrete_span_ids, dtype=torch.long, device=self.device_)
        uniform = cumulative(layout.cond_mask.double()).to(self.device_)
        history = []
        for epoch in range(self.epochs):
            epoch_start = time.perf_counter()
            totals = torch.zeros(2, device=self.device_)
            for (index,) in loader:
                if len(index) == 0:
                    continue
                index = index.to(self.device_)
                real, real_cond = rows.batch(index), layout.cond_vector(*self._own_conditions(index, discrete_spans))
                noise, column, category, cond = self._uniform_conditions(len(index), uniform)
                with torch.no_grad():
                    fake = layout.activate(self.generator_(torch.cat([noise, cond], dim=1)))
                logits = discriminator(torch.cat([torch.cat([real, real_cond], 1), torch.cat([fake, cond], 1)]))
                labels = torch.cat([torch.ones(len(index)), torch.zeros(len(index))]).to(logits)
                d_loss = F.binary_cross_entropy_with_logits(logits.squeeze(1), labels)
                optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                optimizer.step()

                discriminator.disable_hooks()
                noise, column, category, cond = self._uniform_conditions(len(index), uniform)
                raw = self.generator_(torch.cat([noise, cond], dim=1))
                scores = discriminator(torch.cat([layout.activate(raw), cond], dim=1)).squeeze(1)
                g_loss = F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
                if layout.n_conditions:
                    g_loss = g_loss + layout.condition_loss(raw, column, category)
                self._optimizer_g.zero_grad(set_to_none=True)
                g_loss.backward()
                self._optimizer_g.step()
                discriminator.enable_hooks()
                totals += torch.stack([g_loss.detach(), d_loss.detach()])
            g_total, d_total = (totals / max(1, len(loader))).tolist()
            history.append({"epoch": epoch, "generator_loss": g_total, "discriminator_loss": d_total})
            self.timings_["epoch_s"].append(time.perf_counter() - epoch_start)
            progress.update("train", epoch + 1, self.epochs, unit="epoch", generator_loss=g_total,
                            discriminator_loss=d_total)
        self.epsilon_ = float(privacy.get_epsilon(self.dp_delta)) + frequency_epsilon
        self.stopped_epoch_ = self.epochs
        self.loss_history_ = pd.DataFrame(history, columns=["epoch", "generator_loss", "discriminator_loss"])

    def _own_conditions(self, index: torch.Tensor, discrete_spans: torch.Tensor):
        """Each real row's condition: a random discrete column and the row's own category in it."""
        if self.layout_.n_conditions == 0:
            empty = torch.zeros(len(index), dtype=torch.long, device=self.device_)
            return empty, empty
        column = torch.randint(self.layout_.n_conditions, (len(index),), device=self.device_)
        return column, self._rows.codes[index, discrete_spans[column]]

    def _uniform_conditions(self, n: int, uniform: torch.Tensor):
        """Noise and conditions drawn without looking at the data (uniform over categories)."""
        noise = torch.randn(n, self.embedding_dim, device=self.device_)
        if self.layout_.n_conditions == 0:
            empty = torch.zeros(n, dtype=torch.long, device=self.device_)
            return noise, empty, empty, noise.new_zeros(n, 0)
        column, category = self.layout_.draw_conditions(n, uniform)
        return noise, column, category, self.layout_.cond_vector(column, category)

    def _release_noisy_frequencies(self, epsilon: float) -> None:
        """Category frequencies for sampling through the Laplace mechanism (one row moves one
        count in each discrete column: L1 sensitivity = number of discrete columns)."""
        rng = np.random.default_rng(self.seed + 2)
        discrete = self.encoder_.discrete_
        for j, info in enumerate(discrete):
            counts = self._rows.counts[j, : len(info["categories"])].cpu().numpy().astype(float)
            noisy = np.clip(counts + rng.laplace(0, len(discrete) / epsilon, len(counts)), 0, None) + 1e-9
            info["frequencies"] = (noisy / noisy.sum()).tolist()
        self.layout_ = OutputLayout(self.encoder_, self.device_)

    def _autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        return torch.autocast(self.device_.type, dtype=dtype, enabled=dtype is not None)

    def _redraw_noise_pool(self, batch: int, steps: int) -> None:
        """This epoch's pool of latent and Gumbel noise rows (none when an epoch is short)."""
        if steps <= NOISE_POOL_BATCHES:
            self._noise_pool = None
            return
        size = batch * NOISE_POOL_BATCHES
        logits = torch.empty(size, self.layout_.width - self.layout_.n_continuous, device=self.device_)
        self._noise_pool = (torch.randn(size, self.embedding_dim, device=self.device_), gumbel_noise(logits))

    def _pooled(self, which: int, n: int) -> torch.Tensor | None:
        """`n` rows of the pool's latent (0) or Gumbel (1) noise; None without a pool: draw fresh."""
        pool = getattr(self, "_noise_pool", None)
        if pool is None:
            return None
        return pool[which][torch.randint(len(pool[which]), (n,), device=self.device_)]

    def _noise_and_conditions(self, n: int):
        layout = self.layout_
        noise = self._pooled(0, n)
        if noise is None:
            noise = torch.randn(n, self.embedding_dim, device=self.device_)
        if layout.n_conditions == 0:
            empty = torch.zeros(n, dtype=torch.long, device=self.device_)
            return noise, empty, empty, noise.new_zeros(n, 0)
        column, category = layout.draw_conditions(n, self._rows.condition_cdf)
        return noise, column, category, layout.cond_vector(column, category)

    def _discriminator_step(self, batch: int) -> torch.Tensor:
        noise, column, category, cond = self._noise_and_conditions(batch)
        shuffle = torch.randperm(batch, device=self.device_)
        real = self._rows.batch(self._rows.rows_for(column[shuffle], category[shuffle]))
        with self._autocast():
            with torch.no_grad():
                fake = self.layout_.activate(self._generator_net(torch.cat([noise, cond], dim=1)),
                                             self._pooled(1, batch))
            real_in = torch.cat([real, cond[shuffle]], dim=1)
            fake_in = torch.cat([fake.float(), cond], dim=1)
            loss = self._discriminator_net(fake_in).float().mean() - self._discriminator_net(real_in).float().mean()
            penalty = gradient_penalty(self._discriminator_net, real_in, fake_in, self.pac_)
        self._optimizer_d.zero_grad(set_to_none=True)
        (loss + penalty.float()).backward()
        self._optimizer_d.step()
        return loss

    def _generator_step(self, batch: int) -> torch.Tensor:
        noise, column, category, cond = self._noise_and_conditions(batch)
        with frozen(self.discriminator_, self._classifier):
            with self._autocast():
                raw = self._generator_net(torch.cat([noise, cond], dim=1))
                fake = self.layout_.activate(raw, self._pooled(1, batch))
                loss = -self._discriminator_net(torch.cat([fake, cond.to(fake.dtype)], dim=1)).float().mean()
                if self.layout_.n_conditions:
                    loss = loss + self.layout_.condition_loss(raw, column, category)
                if self._classifier is not None:
                    loss = loss + self.target_loss * self._classifier.loss(fake[: self.classifier_rows].float())
            self._optimizer_g.zero_grad(set_to_none=True)
            loss.backward()
        self._optimizer_g.step()
        if self._classifier is not None:
            self._classifier_step(min(batch, self.classifier_rows))
        return loss

    def _classifier_step(self, rows: int) -> None:
        """One step of the target classifier on `rows` real rows drawn uniformly."""
        real = self._rows.batch(torch.randint(self._rows.n, (rows,), device=self.device_))
        loss = self._classifier.loss(real)
        self._optimizer_c.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer_c.step()

    def _keep_if_best(self) -> bool:
        """Early stopping score: 1 - mean total variation of span frequencies (modes and categories)
        and of each continuous value's histogram.

        A fast proxy for the column-shape fidelity score, computed on the device.
        """
        rows = self._rows
        alphas, codes = self._generate(min(rows.n, VALIDATION_ROWS), None)
        spans = 0.5 * (span_frequencies(rows.codes, self.layout_) - span_frequencies(codes, self.layout_)).abs().sum()
        shapes = 0.5 * (alpha_histograms(rows.alphas) - alpha_histograms(alphas)).abs().sum()
        score = 1.0 - float(spans + shapes) / (self.layout_.n_spans + self.layout_.n_continuous)
        self.validation_scores_.append(score)
        if score > self.best_score_ + 1e-3:
            self.best_score_ = score
            self._best_state = copy.deepcopy(self.generator_.state_dict())
            return True
        return False

    # ----- sampling ---------------------------------------------------
    @torch.no_grad()
    def _generate(self, n: int, steer: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` rows as (alphas, codes); `steer` = (condition index, category) fixes the condition vector."""
        layout = self.layout_
        self.generator_.eval()
        chunk = max(64, min(SAMPLE_CHUNK_ROWS, 2**24 // max(1, layout.span_positions.numel())))
        alphas, codes = [], []
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            noise = torch.randn(size, self.embedding_dim, device=self.device_)
            if layout.n_conditions == 0:
                cond = noise.new_zeros(size, 0)
            elif steer is None:
                cond = layout.cond_vector(*layout.draw_conditions(size, layout.sample_cdf))
            else:
                full = torch.full((size,), steer[0], device=self.device_)
                cond = layout.cond_vector(full, torch.full_like(full, steer[1]))
            a, c = layout.decode(self.generator_(torch.cat([noise, cond], dim=1)).float())
            alphas.append(a)
            codes.append(c)
        self.generator_.train()
        return torch.cat(alphas), torch.cat(codes)

    def _unconditional(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`n` rows as (alphas, codes) with no condition; raked onto the discrete columns' training
        shares when `rake` is on. Liver, kidney and the admissions came out with category shares
        off by up to 0.16 (sex 0.68 male against 0.52 in the training rows) and a third of the
        missing values, each visible to a detector on its own."""
        spans = self.encoder_.discrete_span_ids
        if not (self.rake and spans):
            alphas, codes = self._generate(n, None)
            return alphas.cpu().numpy(), codes.cpu().numpy()
        shares = [np.asarray(info["frequencies"]) for info in self.encoder_.discrete_]
        pieces = []
        for start in range(0, n, RAKING_PIECE_ROWS):
            size = min(RAKING_PIECE_ROWS, n - start)
            alphas, codes = (t.cpu().numpy() for t in self._generate(RAKING_POOL * size, None))
            keep = raked_selection(codes[:, spans], shares, size, rng)
            pieces.append((alphas[keep], codes[keep]))
        return np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])

    def _sample(self, n: int, conditions: dict[str, str]) -> pd.DataFrame:
        """Unconditional: raked (`_unconditional`). Conditioned: steer with the rarest condition, keep
        rows meeting all; rows still missing get the requested values set directly, and the
        acceptance rate says how many did. Conditioned draws are not raked: the shares a column
        should have under a condition are not among what the model keeps."""
        encoder = self.encoder_
        rng = np.random.default_rng(np.random.randint(2**31))  # numpy's global generator, seeded by `sample`
        wanted = {encoder.span_index(c): encoder.category_code(c, v) for c, v in conditions.items()}
        if not wanted:
            self.acceptance_rate_, self.forced_rows_ = 1.0, 0
            return self._decoded(*self._unconditional(n, rng), rng)

        def frequency(span):
            return encoder.discrete_[span - encoder.n_continuous]["frequencies"][wanted[span]]
        rarest = min(wanted, key=frequency)
        steer = (rarest - encoder.n_continuous, wanted[rarest])
        kept_alphas, kept_codes, have, drawn = [], [], 0, 0
        spans = torch.as_tensor(list(wanted), dtype=torch.long, device=self.device_)
        values = torch.as_tensor(list(wanted.values()), dtype=torch.long, device=self.device_)
        for _ in range(20):
            size = min(max(2 * (n - have), 1024), 200_000)
            alphas, codes = self._generate(size, steer)
            drawn += size
            ok = (codes[:, spans] == values).all(dim=1)
            kept_alphas.append(alphas[ok])
            kept_codes.append(codes[ok])
            have += int(ok.sum())
            if have >= n:
                break
        self.acceptance_rate_ = have / drawn
        self.forced_rows_ = max(0, n - have)
        if self.forced_rows_:
            alphas, codes = self._generate(self.forced_rows_, steer)
            codes[:, spans] = values
            kept_alphas.append(alphas)
            kept_codes.append(codes)
        return self._decoded(torch.cat(kept_alphas)[:n].cpu().numpy(), torch.cat(kept_codes)[:n].cpu().numpy(), rng)

    def _decoded(self, alphas: np.ndarray, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        frame = self.encoder_.inverse_transform(alphas, codes)
        if self.calibration_ is None and self.alignment_ is None:
            return frame
        mapped = self._present(frame)
        if self.calibration_ is not None:
            mapped = self.calibration_.transform(mapped, rng)
        if self.alignment_ is not None:
            mapped = self.alignment_.transform(mapped, rng)
        for column in self._continuous_names():  # rows flagged missing keep their placeholder
            frame[column] = mapped[column].fillna(frame[column])
        return frame

    def _continuous_names(self) -> list[str]:
        return [info["name"] for info in self.encoder_.continuous_]

    def _present(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with missing numbers as NaN (not the codec's fill, a pile at the median that both
        maps would otherwise learn as a value: kidney's rc is 32 % missing)."""
        return frame.assign(**placeholders_as_missing(frame, self._continuous_names()))

    # ----- persistence ------------------------------------------------
    def _save_state(self, directory: Path) -> None:
        (directory / ENCODER_FILE).write_text(json.dumps(self.encoder_.to_dict()))
        torch.save(self.generator_.state_dict(), directory / STATE_FILE)
        if self.calibration_ is not None:
            (directory / CALIBRATION_FILE).write_text(json.dumps(self.calibration_.to_dict()))
        if self.alignment_ is not None:
            (directory / ALIGNMENT_FILE).write_text(json.dumps(self.alignment_.to_dict()))

    def _load_state(self, directory: Path) -> None:
        self.device_ = resolve_device(self.device)
        self.encoder_ = ModeSpecificEncoder.from_dict(json.loads((directory / ENCODER_FILE).read_text()))
        calibration = directory / CALIBRATION_FILE
        self.calibration_ = (MarginalCalibration.from_dict(json.loads(calibration.read_text()))
                             if calibration.is_file() else None)
        alignment = directory / ALIGNMENT_FILE
        self.alignment_ = (CorrelationAlignment.from_dict(json.loads(alignment.read_text()))
                           if alignment.is_file() else None)
        self.layout_ = OutputLayout(self.encoder_, self.device_)
        self.generator_ = build_generator(self.embedding_dim + self.layout_.cond_dim, self.generator_dims,
                                          self.layout_.width).to(self.device_)
        self.generator_.load_state_dict(torch.load(directory / STATE_FILE, map_location=self.device_,
                                                   weights_only=True))
