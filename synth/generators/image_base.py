"""Template-method base for image generators, in the same shape as the tabular one.

The public `fit`/`sample`/`save`/`load` validate and keep the class names and image size;
engines implement only `_fit`, `_sample`, `_save_state` and `_load_state`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from synth.errors import InputError
from synth.generators.base import Engine, seed_everything
from synth.images import ImageSet, label_index
from synth.resources import ImageCost, ResourceEstimate, estimate_images

SAMPLE_BATCH = 256  # images drawn per forward pass


class ImageGenerator(Engine, ABC):
    """`fit(ImageSet)` then `sample(n, {"label": class})`: exactly n images of that class."""

    kind = "images"
    cost: ClassVar[ImageCost]  # its cost model's constants, measured by benchmarks/image_gan.py

    def __init__(self, iterations: int = 1000, batch_size: int = 64, seed: int = 0, threads: int | None = None):
        self.iterations, self.batch_size, self.seed, self.threads = iterations, batch_size, seed, threads

    @classmethod
    def estimate(cls, n_images: int, size: int, iterations: int) -> ResourceEstimate:
        """Peak memory and seconds of training on `n_images` of `size` px, before any training."""
        return estimate_images(n_images, size, cls.cost, iterations)

    # ----- public API -------------------------------------------------
    def fit(self, images: ImageSet, time_budget_s: float | None = None) -> "ImageGenerator":
        """Train from scratch for `iterations` steps (or until the time budget runs out)."""
        if len(images) < 2 or len(set(images.labels.tolist())) < 2:
            raise InputError(f"the {self.engine} engine needs at least two classes with images")
        if self.threads:
            torch.set_num_threads(self.threads)
        seed_everything(self.seed)
        self.size_, self.class_names_ = int(images.images.shape[-1]), list(images.class_names)
        self._fit(images, time_budget_s)
        return self

    @torch.no_grad()
    def sample(self, n: int, conditions: dict | None = None, seed: int | None = None) -> ImageSet:
        """Exactly `n` images, all of `conditions["label"]` when given, else of random classes."""
        conditions = self._checked_draw(n, conditions)
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        if "label" in conditions:
            labels = torch.full((n,), label_index(self.class_names_, conditions["label"]), dtype=torch.long)
        else:
            labels = torch.randint(0, len(self.class_names_), (n,), generator=generator)
        pixels = [self._sample(labels[start:start + SAMPLE_BATCH], generator) for start in range(0, n, SAMPLE_BATCH)]
        return ImageSet(np.concatenate(pixels), labels.numpy().astype(np.int64), list(self.class_names_))

    def sample_balanced(self, counts: dict[int, int], seed: int | None = None) -> ImageSet:
        """Enough images of each class to bring every class up to the largest one."""
        target = max(counts.values())
        base = self.seed if seed is None else seed
        parts = [self.sample(target - c, {"label": k}, seed=base + k) for k, c in counts.items() if target > c]
        if not parts:
            raise InputError("the classes are already balanced; nothing to add")
        return ImageSet(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                        list(self.class_names_))

    @staticmethod
    def served(draws: list[ImageSet]) -> np.ndarray:
        """Several draws as one served answer (the MLflow model's output): uint8 images (N, H, W), in order."""
        return np.concatenate([draw.images for draw in draws])

    def _checked_draw(self, n: int, conditions: dict | None) -> dict:
        """What every engine's `sample` checks first: fitted, a positive count, conditions on 'label' only."""
        self._check_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(f"number of images must be a positive integer, got {n!r}")
        conditions = dict(conditions or {})
        unknown = set(conditions) - {"label"}
        if unknown:
            raise InputError(f"image conditions take only 'label', not {', '.join(sorted(unknown))}")
        return conditions

    def _check_fitted(self) -> None:
        if not hasattr(self, "size_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit first")

    def _metadata(self) -> dict:
        return {"size": self.size_, "class_names": self.class_names_, "loss_history": self.loss_history_}

    def _restore(self, meta: dict) -> None:
        self.size_, self.class_names_, self.loss_history_ = meta["size"], meta["class_names"], meta["loss_history"]

    # ----- for engines ------------------------------------------------
    @abstractmethod
    def _fit(self, images: ImageSet, time_budget_s: float | None) -> None:
        """Train; set `loss_history_` (a dict of equal-length lists: iteration, generator_loss,
        discriminator_loss)."""

    @abstractmethod
    def _sample(self, labels: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        """uint8 images (len(labels), H, W) of those classes, noise drawn from `generator`."""
