"""What a training will cost, estimated before it starts, so a request over budget is refused up
front instead of being killed half-way.

The cost models' forms are here; each engine carries its own constants (its `cost`), calibrated
on the 2-core AMD EPYC CPU the README's benchmarks come from (on a GPU or a bigger machine they are
upper bounds):
- tables: step time proportional to batch rows x the networks' multiply-adds (generator, PacGAN
  discriminator, gradient penalty); 2.16 s per epoch for 30,000 simulated admissions at batch 500;
  breast cancer's 398 rows at 300 epochs: 12.6 s measured, 15 s estimated; the ctgan engine
  about 2x ours per epoch; memory a base for the libraries plus the table's
  encoded copies (ctgan keeps a dense one-hot float copy);
- images: training images per second at 28 px, falling with size^2.5; memory a base plus the
  image arrays' float copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from synth.schema import Schema

SECONDS_PER_MAC = 6.4e-11  # tabgan, fp32, 2 CPU threads: 2.16 s/epoch on the 30,000-row benchmark table
PREPROCESS_S_PER_CONTINUOUS = 0.25  # mixture fit on <= 5,000 rows (breast cancer: 7 s for 30 columns)
BASE_MEMORY_MB = 700.0  # torch, pandas, scikit-learn, MLflow and the evaluation's models, imported


@dataclass(frozen=True)
class ResourceEstimate:
    memory_mb: float
    train_s: float


@dataclass(frozen=True)
class TabularCost:
    """A tabular engine's constants: float32 copies of the encoded table alive at its peak, and its
    seconds per epoch against tabgan's multiply-add model."""

    table_copies: float
    seconds_factor: float = 1.0


@dataclass(frozen=True)
class ImageCost:
    """An image engine's constants: training images per second at 28 px (falling with size^2.5),
    float32 copies of the image arrays (train, augmentations, features, evaluation), and the passes
    of the small CNN over each training image before training (the image GAN's soft labels)."""

    images_per_s_28px: float
    image_copies: float
    classifier_passes: float = 0.0


CLASSIFIER_IMAGES_PER_S_28PX = 4500.0  # synth.classifier's CNN, 2 CPU threads: 64 images in about 14 ms


def encoded_width(table: pd.DataFrame, schema: Schema, max_modes: int = 10) -> tuple[int, int]:
    """Columns of the encoded table and of the conditional vector: a continuous column is its
    normalised value plus one slot per mixture mode, a discrete one a slot per category."""
    width = cond = 0
    for column in schema.modelled:
        if schema.kinds[column] in ("numeric", "datetime"):
            width += 1 + max_modes
        else:
            categories = int(table[column].nunique(dropna=False))
            width, cond = width + categories, cond + categories
        width += 2 if table[column].isna().any() else 0
    return width, cond


def estimate_tabular(table: pd.DataFrame, schema: Schema, cost: TabularCost, epochs: int, batch_size: int,
                     embedding_dim: int = 128, hidden: tuple[int, ...] = (256, 256), pac: int = 10) -> ResourceEstimate:
    width, cond = encoded_width(table, schema)
    g_macs, fan_in = 0, embedding_dim + cond
    for dim in hidden:  # residual layers concatenate their input to their output
        g_macs, fan_in = g_macs + fan_in * dim, fan_in + dim
    g_macs += fan_in * width
    d_macs = (width + cond) * hidden[0] + sum(a * b for a, b in zip(hidden, hidden[1:])) / pac
    steps = epochs * max(1, -(-len(table) // batch_size))
    seconds = steps * min(batch_size, len(table)) * (3 * g_macs + 10 * d_macs) * SECONDS_PER_MAC
    continuous = sum(schema.kinds[c] in ("numeric", "datetime") for c in schema.modelled)
    seconds += continuous * PREPROCESS_S_PER_CONTINUOUS
    table_mb = len(table) * (width + cond) * 4 / 1e6
    return ResourceEstimate(BASE_MEMORY_MB + cost.table_copies * table_mb, seconds * cost.seconds_factor)


def estimate_images(n_images: int, size: int, cost: ImageCost, iterations: int, batch_size: int = 64) -> ResourceEstimate:
    scale = (28 / size) ** 2.5
    seconds = (iterations * batch_size / (cost.images_per_s_28px * scale)
               + cost.classifier_passes * n_images / (CLASSIFIER_IMAGES_PER_S_28PX * scale))
    return ResourceEstimate(BASE_MEMORY_MB + cost.image_copies * n_images * size * size * 4 / 1e6, seconds)
