"""A class-conditional GAN for small grayscale image sets, in plain torch.

Designed for little data, from the papers rather than any package's code:
- generator: ResNet blocks with conditional BatchNorm (class-dependent gain and bias),
  nearest upsampling + 3x3 convolution (no transposed convolutions, no checkerboards);
- discriminator: ResNet blocks with spectral normalisation, global sum pooling and a
  projection term <embed(y), h> (Miyato & Koyama 2018), given the image's high-pass residual,
  amplified, as a second input channel so that it judges fine texture too;
- relativistic pairing loss (RpGAN: each real image scored against a generated image of its class,
  Jolicoeur-Martineau 2019; Huang et al. 2024) or the hinge loss, Adam(β = 0, 0.999);
  DiffAugment (Zhao et al. 2020: translation, cutout, brightness, contrast) on real and fake
  images in both steps; optional LeCam regularisation (Tseng et al. 2021); an exponential
  moving average of the generator with warm-up, used for sampling;
- soft labels: each training image conditioned on its label mixed with the class probabilities of
  a CNN that did not see it (out-of-fold), so the condition says how typical of its class the image
  looks; at sampling a class's conditions are drawn from its training images' (as quantile-bin means);
- typicality matching at sampling: several images drawn per one kept, the kept ones chosen so that how
  typical of their class they look (by the soft labels' CNNs) spreads as the training images' does;
- optionally, at sampling, class embeddings spread a random share toward another class (`class_spread`).
Base resolution 7 (28 px) or 4 (64/128 px) doubles per block; the same family runs on CPU
at 28 px in minutes and on a GPU (bf16 autocast) at 64-128 px.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from synth import progress
from synth.classifier import SmallCNN, image_tensor, out_of_fold_probabilities, predict_proba, tensor_images
from synth.errors import InputError
from synth.generators.base import frozen, resolve_device
from synth.generators.augment import check_policy, diff_augment
from synth.generators.image_base import ImageGenerator
from synth.images import ImageSet
from synth.resources import ImageCost

STATE_FILE = "image_gan.pt"
CONDITIONS_FILE = "image_gan_conditions.pt"  # per class, the quantile-bin means drawn from at sampling
TYPICALITY_FILE = "image_gan_typicality.pt"  # the out-of-fold CNNs and, per class, their bin means on the training images
CONDITION_BINS = 16  # at most; each bin averages at least 4 training images
LOSSES = ("relativistic", "hinge")


def class_embedding(embedding: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """Rows of `embedding` for class indices, or their mixtures for class weights (n, classes)."""
    return y @ embedding.weight if y.is_floating_point() else embedding(y)


class ConditionalBatchNorm(nn.Module):
    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x, y):
        gain, bias = class_embedding(self.gain, y), class_embedding(self.bias, y)
        return self.norm(x) * gain[:, :, None, None] + bias[:, :, None, None]


class GeneratorBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, n_classes: int):
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(c_in, n_classes), ConditionalBatchNorm(c_out, n_classes)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, y):
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    def __init__(self, size: int, n_classes: int, z_dim: int = 64, width: int = 16):
        super().__init__()
        self.base, blocks = _layout(size)
        # channels halve as resolution doubles: `width` at full resolution, where convolutions cost most
        channels = [min(width * 2 ** (blocks - i), 256) for i in range(blocks + 1)]
        self.z_dim, self.base_channels = z_dim, channels[0]
        self.embed = nn.Embedding(n_classes, z_dim)
        self.linear = nn.Linear(2 * z_dim, self.base * self.base * channels[0])
        self.blocks = nn.ModuleList(GeneratorBlock(a, b, n_classes) for a, b in zip(channels, channels[1:]))
        self.out = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(), nn.Conv2d(channels[-1], 1, 3, padding=1),
                                 nn.Tanh())

    def forward(self, z, y):
        h = self.linear(torch.cat([z, class_embedding(self.embed, y)], dim=1))
        h = h.view(-1, self.base_channels, self.base, self.base)
        for block in self.blocks:
            h = block(h, y)
        return self.out(h)


class DiscriminatorBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, first: bool):
        super().__init__()
        self.first = first
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        return h + self.skip(F.avg_pool2d(x, 2))  # pooling commutes with a 1x1 convolution: pool the fewer channels


def minibatch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """One more channel: the feature standard deviation within groups of `group` images (Karras et al.
    2018), so the discriminator can see a batch of look-alikes and the generator pays for collapse."""
    n, c, height, width = h.shape
    g = min(group, n)
    while n % g:
        g -= 1
    groups = h.view(g, -1, c, height, width)
    # the standard deviation written out: torch's std over the leading dimension ran 5x slower here
    spread = (groups - groups.mean(0)).pow(2).mean(0).sqrt().mean(dim=(1, 2, 3))
    return torch.cat([h, spread.view(-1, 1, 1, 1).repeat(g, 1, height, width)], dim=1)


def texture_channel(x: torch.Tensor, gain: float) -> torch.Tensor:
    """`x` with one more channel: its high-pass residual (each pixel less its 3x3 mean) times `gain`.
    Fine texture is about a fifth of an ultrasound image's spread, and spectrally normalised layers
    cannot raise it above that, so a discriminator fed the image alone judges shapes and lets the
    texture go (Yang et al. 2022, FreGAN, on discriminators trained on little data)."""
    residual = x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return torch.cat([x, gain * residual], dim=1)


class Discriminator(nn.Module):
    def __init__(self, size: int, n_classes: int, width: int = 16, batch_std: bool = False, texture: float = 0.0):
        super().__init__()
        _, blocks = _layout(size)
        self.texture = texture
        channels = [1 + (texture > 0)] + [width * min(2 ** i, 8) for i in range(blocks)]
        self.blocks = nn.Sequential(*(DiscriminatorBlock(a, b, i == 0)
                                      for i, (a, b) in enumerate(zip(channels, channels[1:]))))
        self.last = spectral_norm(nn.Conv2d(channels[-1] + 1, channels[-1], 3, padding=1)) if batch_std else None
        self.linear = spectral_norm(nn.Linear(channels[-1], 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, channels[-1]))

    def forward(self, x, y):
        if self.texture:
            x = texture_channel(x, self.texture)
        h = self.blocks(x)
        if self.last is not None:
            h = self.last(minibatch_std(F.relu(h)))
        h = F.relu(h).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (class_embedding(self.embed, y) * h).sum(dim=1)


def _layout(size: int) -> tuple[int, int]:
    """(base resolution, number of doubling blocks): 28 → 7·2², 64 → 4·2⁴, 128 → 4·2⁵."""
    for base in (7, 4, 5, 6, 3):
        blocks = math.log2(size / base)
        if blocks >= 1 and blocks == int(blocks):
            return base, int(blocks)
    raise InputError(f"image size {size} is not supported; use 28, 32, 64 or 128")


def condition_bins(conditions: np.ndarray, k: int, bins: int = CONDITION_BINS) -> torch.Tensor:
    """Class `k`'s training conditions kept as the means of up to `bins` bins of at least 4 images,
    sorted by the class's own weight: the spread of how typical its images look, with no training
    image's own probabilities in the saved model."""
    order = np.argsort(conditions[:, k], kind="stable")
    parts = np.array_split(conditions[order], max(1, min(bins, len(conditions) // 4)))
    return torch.from_numpy(np.stack([part.mean(axis=0) for part in parts])).float()


def typical_choice(own: torch.Tensor, bins: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of `n` of the candidates whose own-class probabilities are `own`, drawn so that as many
    fall near each of the training images' bin means `bins` (bins of equal size): each candidate
    weighted by one over the number of candidates nearest its bin, drawn without replacement."""
    nearest = torch.bucketize(own, (bins[1:] + bins[:-1]) / 2)
    weights = 1 / torch.bincount(nearest, minlength=len(bins)).float()[nearest]
    return torch.multinomial(weights, n, replacement=False, generator=generator)


class ConditionalImageGAN(ImageGenerator):
    """The class-conditional image engine (module docstring: what it is built from)."""

    engine = "image_gan"
    # defaults, 2 CPU threads (benchmarks/image_gan.py: 205-259); soft labels: 5 CNNs x 15 epochs on 4/5 of the images
    cost = ImageCost(images_per_s_28px=200.0, image_copies=12, classifier_passes=60)

    def __init__(self, iterations: int = 1000, batch_size: int = 64, seed: int = 0, z_dim: int = 64,
                 g_width: int = 16, d_width: int = 32, lr_g: float = 1e-4, lr_d: float = 4e-4, lecam: float = 0.0,
                 ema_decay: float = 0.999, batch_std: bool = True, mode_seeking: float = 0.0,
                 augment: str = "color,translation,cutout", soft_labels: float = 0.3, class_spread: float = 0.0,
                 loss: str = "relativistic", d_texture: float = 4.0, typical_draws: int = 4, device: str = "auto",
                 threads: int | None = None):
        # A discriminator wider than the generator, trained at a higher rate (two time-scale update
        # rule): at 16/16 and one rate the generator mode-collapsed on BreastMNIST
        # (benchmarks/HISTORY.md, "Images, earlier sessions").
        super().__init__(iterations=iterations, batch_size=batch_size, seed=seed, threads=threads)
        self.z_dim, self.g_width, self.d_width, self.lr_g, self.lr_d = z_dim, g_width, d_width, lr_g, lr_d
        self.lecam, self.ema_decay, self.device = lecam, ema_decay, device
        # Against collapse on a few hundred images: a minibatch standard-deviation channel in the
        # discriminator (on by default: BreastMNIST recall 0.04 -> 0.4-0.6, benchmarks/HISTORY.md,
        # session 7); a mode-seeking term (Mao et al. 2019; off: it spreads the majority class well
        # but drifts a minority class's images towards the other class)
        self.batch_std, self.mode_seeking = batch_std, mode_seeking
        self.augment = check_policy(augment)
        if not 0 <= soft_labels <= 1:
            raise InputError(f"soft_labels must be between 0 and 1, got {soft_labels}")
        # The share of each training image's condition given by out-of-fold CNN probabilities instead of
        # its label (0: hard labels). The generator's images were more typical of their class than real
        # ones (malignant called malignant by real-data CNNs 0.93-1.00 of the time, real images 0.71):
        # conditioned on how typical each real image looks, it learns the class's ambiguous images too.
        # Development split, eight seeds each: 0.5 kept the hard labels' mean coverage with half its spread,
        # 0.3 raised it (0.562 against 0.533, better on 7 of 8 seeds): benchmarks/HISTORY.md, "Images,
        # session 25".
        self.soft_labels = soft_labels
        if not 0 <= class_spread < 0.5:
            raise InputError(f"class_spread must be at least 0 and below 0.5, got {class_spread}")
        # At sampling, each image's class embeddings move a random fraction in [0, class_spread) toward
        # another class's: with hard labels this raised coverage (development split, 12 checkpoints:
        # 0.33 -> 0.39, benchmarks/HISTORY.md, session 16); soft labels do it from the data, and it
        # is off beside them.
        # The label-agreement gate still refuses images that look like the other class.
        self.class_spread = class_spread
        if loss not in LOSSES:
            raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        # The relativistic pairing loss has no mode-dropping local optimum where the hinge loss has
        # (Sun et al. 2020). Development split, five seeds at 1,000 steps, hinge -> relativistic:
        # malignant coverage 0.31 -> 0.52 (every seed 0.47-0.57), recall 0.44 -> 0.73, Fréchet
        # distance 2.2 -> 0.77, and no seed below the label-agreement gate (benchmarks/HISTORY.md,
        # session 20).
        self.loss = loss
        if d_texture < 0:
            raise InputError(f"d_texture must be at least 0, got {d_texture}")
        # The discriminator's texture channel, its gain (0: none). 4 brings the high-pass residual
        # (std 0.074 on BreastMNIST's training images in [-1, 1]) to the images' own spread (0.37), set
        # before training. Development split, sixteen seeds against the defaults without it: malignant
        # coverage +0.070 (higher on 13 of 16), recall and Fréchet distance better too; official split:
        # published coverage 0.463 -> 0.524 (benchmarks/HISTORY.md, "Images, session 32").
        self.d_texture = d_texture
        if not isinstance(typical_draws, (int, np.integer)) or typical_draws < 1:
            raise InputError(f"typical_draws must be a positive integer, got {typical_draws!r}")
        # Images drawn per image kept (1: every draw kept). Some trainings' images of a class read as the
        # other class far more often than real ones do (official split, session 32: malignant called
        # malignant 0.26-0.77 of the time by the label checker, real test images 0.67), and the gate
        # refuses them. Kept images are chosen so that the out-of-fold CNNs' probability of their own
        # class spreads as it does over the training images, in both directions: too typical is a
        # narrower class, too atypical the wrong one. 4, set before the trial: on the development split,
        # eight trainings each drawn both ways, malignant coverage +0.013 (higher on 6 of 8), the gap
        # to real images' label agreement 0.184 -> 0.168 (benchmarks/HISTORY.md, "Images, session 33").
        self.typical_draws = typical_draws

    def _fit(self, images: ImageSet, time_budget_s: float | None) -> None:
        device = resolve_device(self.device)
        n_classes = len(self.class_names_)
        started = time.perf_counter()
        conditions = np.eye(n_classes)[images.labels]
        self.checkers_, self.typicality_ = [], []
        if self.soft_labels or self.typical_draws > 1:
            proba, self.checkers_ = out_of_fold_probabilities(images, seed=self.seed)
            conditions = (1 - self.soft_labels) * conditions + self.soft_labels * proba
            self.typicality_ = [condition_bins(proba[images.labels == k], k)[:, k] for k in range(n_classes)]
        self.conditions_ = [condition_bins(conditions[images.labels == k], k) for k in range(n_classes)]
        # channels-last weights: the convolutions ran 14 % faster a step on 2 CPU cores
        # (benchmarks/HISTORY.md, session 17)
        g = Generator(self.size_, n_classes, self.z_dim, self.g_width).to(device, memory_format=torch.channels_last)
        d = Discriminator(self.size_, n_classes, self.d_width, self.batch_std, self.d_texture)
        d = d.to(device, memory_format=torch.channels_last)
        self._training = {
            "g": g, "d": d, "ema": copy.deepcopy(g).eval(), "step": 0, "lecam": [0.0, 0.0],
            "opt_g": torch.optim.Adam(g.parameters(), lr=self.lr_g, betas=(0.0, 0.999)),
            "opt_d": torch.optim.Adam(d.parameters(), lr=self.lr_d, betas=(0.0, 0.999)),
            "conditions": torch.from_numpy(conditions).float().to(device),
        }
        self.loss_history_ = {"iteration": [], "generator_loss": [], "discriminator_loss": []}
        self.train_seconds_ = time.perf_counter() - started  # the soft labels' CNNs
        self.partial_fit(images, self.iterations, time_budget_s)

    def partial_fit(self, images: ImageSet, iterations: int, time_budget_s: float | None = None) -> "ConditionalImageGAN":
        """Continue training for `iterations` more steps (networks and optimisers kept from the last call)."""
        state = self._training
        g, d, ema, opt_g, opt_d = state["g"], state["d"], state["ema"], state["opt_g"], state["opt_d"]
        device = next(g.parameters()).device
        real, conditions = image_tensor(images.images).to(device), state["conditions"]
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        ema_real, ema_fake = state["lecam"]
        started, first_step = time.perf_counter(), state["step"]
        g.train()
        for _ in range(iterations):
            step = state["step"]
            z = torch.randn(self.batch_size, self.z_dim, device=device)
            rows = torch.randint(0, len(real), (self.batch_size,), device=device)  # classes at their frequencies
            half = self.batch_size // 2
            if self.mode_seeking:  # pairs of images of one condition from two noise vectors
                rows[half:2 * half] = rows[:half]
            # each generated image has a real image's condition, and the two are the pair the relativistic loss compares
            x, fake_y = real[rows], conditions[rows]
            with autocast:
                fake = g(z, fake_y)
                d_real = d(diff_augment(x, self.augment), fake_y)
                d_fake = d(diff_augment(fake.detach(), self.augment), fake_y)
                if self.loss == "relativistic":
                    loss_d = F.softplus(d_fake - d_real).mean()
                else:
                    loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
                if self.lecam:
                    loss_d = loss_d + self.lecam * (F.relu(d_real - ema_fake).pow(2).mean()
                                                    + F.relu(ema_real - d_fake).pow(2).mean())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if self.lecam:
                ema_real = 0.99 * ema_real + 0.01 * d_real.mean().item()
                ema_fake = 0.99 * ema_fake + 0.01 * d_fake.mean().item()
            with frozen(d):  # the same fake batch, now with gradients to the generator only
                with autocast:
                    d_generated = d(diff_augment(fake, self.augment), fake_y)
                    # the real scores of the discriminator's step, detached: one forward pass fewer a step
                    loss_g = F.softplus(d_real.detach() - d_generated).mean() if self.loss == "relativistic" \
                        else -d_generated.mean()
                    if self.mode_seeking:
                        spread = (fake[:half] - fake[half:2 * half]).abs().mean() / (z[:half] - z[half:2 * half]).abs().mean()
                        loss_g = loss_g + self.mode_seeking / (spread + 1e-5)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
            opt_g.step()
            self._update_ema(ema, g, step)
            if step % 10 == 0:
                for key, value in zip(self.loss_history_, (step, loss_g.item(), loss_d.item())):
                    self.loss_history_[key].append(value)
                progress.update("train", step + 1, first_step + iterations, unit="step",
                                generator_loss=self.loss_history_["generator_loss"][-1],
                                discriminator_loss=self.loss_history_["discriminator_loss"][-1])
            state["step"] = step + 1
            if time_budget_s is not None and time.perf_counter() - started > time_budget_s:
                break
        state["lecam"] = [ema_real, ema_fake]
        self.generator_ = self._standing_stats(copy.deepcopy(ema).cpu(), conditions.cpu())
        self.images_seen_ = state["step"] * self.batch_size
        self.train_seconds_ += time.perf_counter() - started
        return self

    @torch.no_grad()
    def _standing_stats(self, generator: nn.Module, conditions: torch.Tensor, batches: int = 16) -> nn.Module:
        """BatchNorm statistics recomputed with the EMA weights themselves (BigGAN's "standing stats"):
        the running statistics copied from the live generator belong to other weights, and sampling
        with them measurably shrank the diversity of samples (pixel std 9.7 vs 22.5)."""
        for module in generator.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the batches below
        generator.train()
        for _ in range(batches):
            y = conditions[torch.randint(0, len(conditions), (self.batch_size,))]
            generator(torch.randn(self.batch_size, self.z_dim), y)
        return generator.eval()

    def _update_ema(self, ema: nn.Module, g: nn.Module, step: int) -> None:
        # Warm-up: follow closely at first. The ramp reaches only 0.991 by step 1,000, so at the default
        # length it, not `ema_decay`, sets the average: about the last tenth of training. Longer averages
        # were measured and did not help (benchmarks/HISTORY.md, session 21).
        decay = min(self.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), g.parameters()):
                e.lerp_(p, 1 - decay)
            # no buffers copied: the BatchNorm statistics are recomputed for the EMA weights at the end

    def _sample(self, labels: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        if self.typical_draws == 1 or not self.checkers_:
            return self._draw(labels, generator)
        kept = np.empty((len(labels), self.size_, self.size_), dtype=np.uint8)
        for k in labels.unique().tolist():
            at = torch.nonzero(labels == k).flatten()
            candidates = self._draw(labels[at].repeat(self.typical_draws), generator)
            # each candidate judged by one fold's CNN, as each training image was: an average of the
            # five would be less extreme than the training images' probabilities it is matched to
            fold = torch.randint(0, len(self.checkers_), (len(candidates),), generator=generator)
            proba = torch.from_numpy(np.stack([predict_proba(m, candidates)[:, k] for m in self.checkers_])).float()
            own = proba.gather(0, fold[None]).squeeze(0)
            kept[at.numpy()] = candidates[typical_choice(own, self.typicality_[k], len(at), generator).numpy()]
        return kept

    def _draw(self, labels: torch.Tensor, generator: torch.Generator) -> np.ndarray:
        self.generator_.eval()
        z = torch.randn(len(labels), self.z_dim, generator=generator)
        return tensor_images(self.generator_(z, self._conditions(labels, generator)))

    def _conditions(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Class weights (n, classes): a condition of each label's class (between two neighbouring bins
        of its training images', at random), less a random share given to another class."""
        n_classes = len(self.class_names_)
        weights = torch.empty(len(labels), n_classes)
        for k in labels.unique().tolist():
            at = labels == k
            bins = self.conditions_[k]
            position = torch.rand(int(at.sum()), generator=generator) * (len(bins) - 1)
            low = position.long()
            high = (low + 1).clamp(max=len(bins) - 1)
            weights[at] = torch.lerp(bins[low], bins[high], (position - low)[:, None])
        if not self.class_spread or n_classes < 2:
            return weights
        other = (labels + torch.randint(1, n_classes, labels.shape, generator=generator)) % n_classes
        share = torch.rand(len(labels), 1, generator=generator) * self.class_spread
        return (1 - share) * weights + share * F.one_hot(other, n_classes).float()

    def _save_state(self, directory: Path) -> None:
        torch.save(self.generator_.state_dict(), directory / STATE_FILE)  # the EMA copy
        torch.save(self.conditions_, directory / CONDITIONS_FILE)
        if self.checkers_:
            torch.save({"checkers": [m.state_dict() for m in self.checkers_], "bins": self.typicality_},
                       directory / TYPICALITY_FILE)

    def _load_state(self, directory: Path) -> None:
        self.generator_ = Generator(self.size_, len(self.class_names_), self.z_dim, self.g_width)
        self.generator_.load_state_dict(torch.load(directory / STATE_FILE, weights_only=True))
        self.generator_.to(memory_format=torch.channels_last)  # the trained one's layout: the same rounding
        self.generator_.eval()
        conditions = directory / CONDITIONS_FILE
        # models saved before soft labels: every class's condition is its one-hot label
        self.conditions_ = torch.load(conditions, weights_only=True) if conditions.exists() \
            else list(torch.eye(len(self.class_names_))[:, None])
        self.checkers_, self.typicality_ = [], []
        if (directory / TYPICALITY_FILE).exists():  # models saved before typicality matching draw as drawn
            saved = torch.load(directory / TYPICALITY_FILE, weights_only=True)
            for weights in saved["checkers"]:
                self.checkers_.append(SmallCNN(len(self.class_names_)).to(memory_format=torch.channels_last))
                self.checkers_[-1].load_state_dict(weights)
                self.checkers_[-1].eval()
            self.typicality_ = saved["bins"]
