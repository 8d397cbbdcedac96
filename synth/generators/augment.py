"""DiffAugment (Zhao et al. 2020): the same random, differentiable augmentation of real and generated
images before the discriminator sees them, so a discriminator on a few hundred images cannot simply
memorise them. Shared by every image engine."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from synth.errors import InputError

AUGMENT_POLICIES = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment for grayscale, differentiable: "color" (brightness, contrast), "translation"
    (1/8 of the image), "cutout" (a square of half the side), any comma-separated subset."""
    n, device = x.shape[0], x.device
    steps = set(policy.split(",")) if policy else set()

    def uniform(*shape):
        return torch.rand(*shape, device=device, generator=generator)

    if "color" in steps:
        x = x + (uniform(n, 1, 1, 1) - 0.5)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (uniform(n, 1, 1, 1) + 0.5) + mean
    if "translation" in steps:
        x = _translate(x, uniform)
    if "cutout" in steps:
        x = _cutout(x, uniform)
    return x


def _translate(x: torch.Tensor, uniform) -> torch.Tensor:
    n, device = x.shape[0], x.device
    shift = (uniform(n, 2) * 2 - 1) * 0.25  # ±1/8 of the image, in [-1, 1] grid units
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


def _cutout(x: torch.Tensor, uniform) -> torch.Tensor:
    n, device = x.shape[0], x.device
    size = x.shape[-1]
    half = size // 2
    corner = (uniform(n, 2) * (size + 1 - half)).long()
    rows = torch.arange(size, device=device)
    inside_y = (rows[None, :] >= corner[:, :1]) & (rows[None, :] < corner[:, :1] + half)
    inside_x = (rows[None, :] >= corner[:, 1:]) & (rows[None, :] < corner[:, 1:] + half)
    mask = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return x * mask[:, None].to(x.dtype)


def check_policy(policy: str) -> str:
    """A comma-separated subset of AUGMENT_POLICIES; anything else is a clear error."""
    unknown = set(policy.split(",")) - set(AUGMENT_POLICIES) - {""}
    if unknown:
        raise InputError(f"unknown DiffAugment policy {', '.join(sorted(unknown))}; use {AUGMENT_POLICIES}")
    return policy
