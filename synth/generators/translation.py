"""Unpaired image-to-image translation between two classes (or sites, scanners, contrasts), written from
the CycleGAN paper (Zhu et al. 2017), not from any package's code:
- generators: ResNet type (7x7 stem, two stride-2 downsamplings, residual blocks, two upsamplings,
  7x7 head, tanh), instance normalisation; nearest upsampling + 3x3 convolution instead of the
  paper's transposed convolutions (no checkerboards);
- discriminators: PatchGAN (4x4 convolutions, a map of real/fake scores, one per patch);
- least-squares adversarial loss, cycle consistency (weight 10) and identity (half of it) losses;
  a pool of 50 earlier translations for the discriminators' updates; Adam(2e-4, β1 = 0.5) with the
  rate decayed linearly to 0 over the second half of training;
- DiffAugment on both discriminators' inputs, for sets of a few hundred images (Zhao et al. 2020).

A translated image is made from one real image of the source class: its variety is that of the
source class, its layout that of its source. `sample` translates images it is given.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synth import progress
from synth.classifier import image_tensor, tensor_images
from synth.errors import InputError
from synth.generators.augment import check_policy, diff_augment
from synth.generators.base import frozen, resolve_device
from synth.generators.image_base import ImageGenerator
from synth.images import ImageSet, label_index
from synth.resources import ImageCost

STATE_FILE = "translation.pt"


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class TranslationGenerator(nn.Module):
    """One direction of the translation: an image in [-1, 1] to an image of the other domain."""

    def __init__(self, width: int = 16, blocks: int = 4):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(1, width, 7), nn.InstanceNorm2d(width), nn.ReLU(True)]
        for c in (width, 2 * width):  # down: size / 4
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        layers += [ResidualBlock(4 * width) for _ in range(blocks)]
        for c in (4 * width, 2 * width):  # up: back to size
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c // 2, 3, padding=1),
                       nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 1, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """Real/fake scores per overlapping patch (about 22 px at 28 px images)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 4, padding=1), nn.InstanceNorm2d(4 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * width, 1, 4, padding=1))

    def forward(self, x):
        return self.net(x)


class ImagePool:
    """Earlier translations, so a discriminator is not trained on the latest generator's output only
    (the paper's history of 50 images): each new image is kept, and half the time the one returned
    in its place is an older one it replaces."""

    def __init__(self, size: int = 50):
        self.size, self.images = size, []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(()) < 0.5:
                slot = int(torch.randint(0, self.size, ()))
                out.append(self.images[slot])
                self.images[slot] = image
            else:
                out.append(image)
        return torch.stack(out)


class TranslationGAN(ImageGenerator):
    """`fit(ImageSet)` learns source ↔ target; `sample(n, sources=train_set)` translates n source-class
    images into target-class ones. `source`/`target`: class names or indices; with two classes and
    none given, the larger class is translated into the smaller."""

    engine = "translate"
    needs_sources = True
    # batch 8 on 2 CPU threads: 3,000 steps in 491 s, 2,700 in 456 s on one machine of this kind,
    # 2,700 in 633 s and 2,000 in 401 s on a slower one (benchmarks/image_gan.py)
    cost = ImageCost(images_per_s_28px=49.0, image_copies=12)

    def __init__(self, iterations: int = 2000, batch_size: int = 8, seed: int = 0, threads: int | None = None,
                 source: str | None = None, target: str | None = None, width: int = 16, blocks: int = 4,
                 d_width: int = 32, lr: float = 2e-4, cycle_weight: float = 10.0, identity_weight: float = 0.5,
                 pool_size: int = 50, augment: str = "color,translation,cutout", device: str = "auto"):
        super().__init__(iterations=iterations, batch_size=batch_size, seed=seed, threads=threads)
        self.source, self.target = source, target
        self.width, self.blocks, self.d_width, self.lr = width, blocks, d_width, lr
        self.cycle_weight, self.identity_weight, self.pool_size = cycle_weight, identity_weight, pool_size
        self.augment, self.device = check_policy(augment), device

    def domains(self, class_names: list[str], counts: list[int]) -> tuple[int, int]:
        """(source, target) class indices."""
        if self.source is None and self.target is None:
            if len(class_names) != 2:
                raise InputError(f"translation needs its two classes named (source:target); this set has "
                                 f"{len(class_names)}: {', '.join(class_names)}")
            larger = int(np.argmax(counts))
            return larger, 1 - larger
        if self.source is None or self.target is None:
            raise InputError("translation needs both a source and a target class")
        source, target = label_index(class_names, self.source), label_index(class_names, self.target)
        if source == target:
            raise InputError(f"translation needs two different classes, not {class_names[source]!r} twice")
        return source, target

    def _fit(self, images: ImageSet, time_budget_s: float | None) -> None:
        if self.size_ % 4:
            raise InputError(f"translation needs an image size divisible by 4, not {self.size_}")
        counts = np.bincount(images.labels, minlength=len(self.class_names_)).tolist()
        self.source_, self.target_ = self.domains(self.class_names_, counts)
        device = resolve_device(self.device)
        a = image_tensor(images.images[images.labels == self.source_]).to(device)
        b = image_tensor(images.images[images.labels == self.target_]).to(device)
        if len(a) < 2 or len(b) < 2:
            raise InputError("translation needs at least two images of each of its two classes")
        g_ab, g_ba = TranslationGenerator(self.width, self.blocks).to(device), TranslationGenerator(self.width, self.blocks).to(device)
        d_a, d_b = PatchDiscriminator(self.d_width).to(device), PatchDiscriminator(self.d_width).to(device)
        opt_g = torch.optim.Adam([*g_ab.parameters(), *g_ba.parameters()], lr=self.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=self.lr, betas=(0.5, 0.999))
        half = self.iterations // 2

        def schedule(step: int) -> float:  # a constant rate, then linear decay to 0 (the paper's schedule)
            return 1.0 if step < half else max(0.0, (self.iterations - step) / max(1, self.iterations - half))

        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in (opt_g, opt_d)]
        pool_a, pool_b = ImagePool(self.pool_size), ImagePool(self.pool_size)
        self.loss_history_ = {"iteration": [], "generator_loss": [], "discriminator_loss": [], "cycle_loss": []}
        started = time.perf_counter()
        for step in range(self.iterations):
            real_a = a[torch.randint(0, len(a), (self.batch_size,), device=device)]
            real_b = b[torch.randint(0, len(b), (self.batch_size,), device=device)]
            fake_b, fake_a = g_ab(real_a), g_ba(real_b)
            cycle = (g_ba(fake_b) - real_a).abs().mean() + (g_ab(fake_a) - real_b).abs().mean()
            identity = (g_ab(real_b) - real_b).abs().mean() + (g_ba(real_a) - real_a).abs().mean()
            with frozen(d_a, d_b):
                adversarial = ((d_b(diff_augment(fake_b, self.augment)) - 1).pow(2).mean()
                               + (d_a(diff_augment(fake_a, self.augment)) - 1).pow(2).mean())
                loss_g = adversarial + self.cycle_weight * cycle + self.cycle_weight * self.identity_weight * identity
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
            opt_g.step()
            loss_d = 0.0
            for d, real, fake in ((d_b, real_b, pool_b(fake_b)), (d_a, real_a, pool_a(fake_a))):
                loss_d = loss_d + 0.5 * ((d(diff_augment(real, self.augment)) - 1).pow(2).mean()
                                         + d(diff_augment(fake, self.augment)).pow(2).mean())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            for scheduler in schedulers:
                scheduler.step()
            if step % 10 == 0:
                for key, value in zip(self.loss_history_, (step, loss_g.item(), loss_d.item(), cycle.item())):
                    self.loss_history_[key].append(value)
                progress.update("train", step + 1, self.iterations, unit="step", generator_loss=loss_g.item(),
                                discriminator_loss=loss_d.item(), cycle_loss=cycle.item())
            if time_budget_s is not None and time.perf_counter() - started > time_budget_s:
                break
        self.generator_, self.inverse_ = g_ab.cpu().eval(), g_ba.cpu().eval()
        self.train_seconds_ = time.perf_counter() - started

    @torch.no_grad()
    def translate(self, images: np.ndarray) -> np.ndarray:
        """Source-class uint8 images (N, H, W) translated into the target class."""
        return np.concatenate([tensor_images(self.generator_(image_tensor(images[i:i + 256])))
                               for i in range(0, len(images), 256)])

    @torch.no_grad()
    def cycle_error(self, images: np.ndarray) -> float:
        """Mean absolute difference (0-255) between source images and their round trip source → target → source."""
        x = image_tensor(images)
        return float((self.inverse_(self.generator_(x)) - x).abs().mean() * 127.5)

    def sample(self, n: int, conditions: dict | None = None, seed: int | None = None,
               sources: ImageSet | None = None) -> ImageSet:
        """`n` target-class images, each translated from a different source-class image of `sources` while
        there are enough (then some twice). `source_indices_`: which image of `sources` each came from."""
        conditions = self._checked_draw(n, conditions)
        if "label" in conditions and label_index(self.class_names_, conditions["label"]) != self.target_:
            raise InputError(f"this translation makes {self.class_names_[self.target_]!r} images only, from "
                             f"{self.class_names_[self.source_]!r} ones")
        if sources is None:
            raise InputError("the translate engine makes images from real source images; none were given")
        pool = np.flatnonzero(sources.labels == self.source_)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        picks = np.concatenate([rng.permutation(pool) for _ in range(-(-n // len(pool)))])[:n]
        self.source_indices_ = picks
        translated = self.translate(sources.images[picks])
        return ImageSet(translated, np.full(n, self.target_, dtype=np.int64), list(self.class_names_))

    def sample_balanced(self, counts: dict[int, int], seed: int | None = None,
                        sources: ImageSet | None = None) -> ImageSet:
        """The target class brought up to the largest class, by translation."""
        missing = max(counts.values()) - counts[self.target_]
        if missing < 1:
            raise InputError(f"the class {self.class_names_[self.target_]!r} is already the largest; nothing to add")
        return self.sample(missing, {"label": self.target_}, seed=seed, sources=sources)

    def _sample(self, labels: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        raise InputError("the translate engine makes images from real source images: call sample(n, sources=...)")

    def _save_state(self, directory: Path) -> None:
        torch.save({"forward": self.generator_.state_dict(), "inverse": self.inverse_.state_dict(),
                    "source": self.source_, "target": self.target_}, directory / STATE_FILE)

    def _load_state(self, directory: Path) -> None:
        state = torch.load(directory / STATE_FILE, weights_only=True)
        self.generator_, self.inverse_ = (TranslationGenerator(self.width, self.blocks) for _ in range(2))
        self.generator_.load_state_dict(state["forward"])
        self.inverse_.load_state_dict(state["inverse"])
        self.generator_.eval(), self.inverse_.eval()
        self.source_, self.target_ = int(state["source"]), int(state["target"])
