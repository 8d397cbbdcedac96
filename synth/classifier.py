"""The small CNN every image score and the image engine's soft labels are made with: seconds on CPU
for a few hundred 28 px images. In `synth/` because the image engine trains it too (out-of-fold
class probabilities, `out_of_fold_probabilities`); `evaluation/` builds its scores on it."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from synth.images import ImageSet

BATCH = 64


class SmallCNN(nn.Module):
    """Classifier whose 64-d penultimate layer is the feature space for every image score."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, n_classes)

    def forward(self, x):
        return self.head(self.body(x))


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) as the networks take them: float (N, 1, H, W) in [-1, 1]."""
    return torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)


def tensor_images(x: torch.Tensor) -> np.ndarray:
    """The inverse of `image_tensor`: network outputs (N, 1, H, W) in [-1, 1] as uint8 images (N, H, W)."""
    return x.squeeze(1).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def classical_augmentation(size: int) -> nn.Module:
    """What an imaging team does before any GAN (kornia, pure torch): flips, rotations up to 15°,
    shifts up to 2 px, and random crops of the image padded by 2 px."""
    import kornia.augmentation as K

    shift = 2 / size
    return nn.Sequential(K.RandomHorizontalFlip(), K.RandomAffine(degrees=15, translate=(shift, shift), p=1.0),
                         K.RandomCrop((size, size), padding=2))


def train_classifier(images: np.ndarray, labels: np.ndarray, n_classes: int, seed: int = 0, epochs: int = 15,
                     steps: int | None = None, augmentation: str = "flip", class_weighted: bool = True,
                     cosine: bool = False) -> SmallCNN:
    """The small CNN; seconds on CPU for a few hundred images. `steps` (batches of 64) replaces
    `epochs` where sets of different sizes must get the same training; `augmentation` is "flip",
    "classical" (`classical_augmentation`) or "none"; `cosine` decays the learning rate to zero over
    the steps (the utility arms), otherwise it stays constant (the label checkers and feature extractor)."""
    torch.manual_seed(seed)
    # channels-last weights: 19.5 -> 14 ms a step on 2 CPU cores (oneDNN's convolutions), the same network
    model = SmallCNN(n_classes).to(memory_format=torch.channels_last)
    x, y = image_tensor(images), torch.from_numpy(labels).long()
    counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
    weights = counts.sum() / (n_classes * counts) if class_weighted else None
    augment = classical_augmentation(x.shape[-1]) if augmentation == "classical" else None
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    total = steps if steps is not None else epochs * math.ceil(len(x) / BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, total) if cosine else None
    model.train()
    done = 0
    while done < total:
        for batch in torch.randperm(len(x), generator=generator).split(BATCH)[: total - done]:
            xb = x[batch]
            if augmentation == "flip":
                flip = torch.rand(len(xb), generator=generator) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            elif augment is not None:
                xb = augment(xb)
            loss = F.cross_entropy(model(xb), y[batch], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if schedule is not None:
                schedule.step()
            done += 1
    return model.eval()


@torch.no_grad()
def predict_proba(model: SmallCNN, images: np.ndarray) -> np.ndarray:
    return torch.cat([F.softmax(model(b), dim=1) for b in image_tensor(images).split(512)]).numpy()


@torch.no_grad()
def features(model: SmallCNN, images: np.ndarray) -> np.ndarray:
    return torch.cat([model.body(b) for b in image_tensor(images).split(512)]).numpy().astype(np.float64)


def out_of_fold_probabilities(images: ImageSet, folds: int = 5, seed: int = 0) -> tuple[np.ndarray, list[SmallCNN]]:
    """Class probabilities (n, classes) of every image by a CNN that did not see it (stratified folds):
    how typical of its class each real image looks, which its label alone does not say; and the
    folds' CNNs, which judge new images by the same measure."""
    n_classes = len(images.class_names)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(images), dtype=np.int64)
    for k in range(n_classes):
        rows = rng.permutation(np.flatnonzero(images.labels == k))
        fold[rows] = np.arange(len(rows)) % folds
    proba, models = np.zeros((len(images), n_classes)), []
    for f in range(folds):
        held = fold == f
        if held.any():
            models.append(train_classifier(images.images[~held], images.labels[~held], n_classes, seed=seed + f))
            proba[held] = predict_proba(models[-1], images.images[held])
    return proba, models
