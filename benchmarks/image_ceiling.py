"""How much the real-holdout ceiling of the image coverage moves with the draw of the holdout.

    python benchmarks/image_ceiling.py [--data builtin:breastmnist] [--resplits 12] [--json out.json]
                                       [--reference-sizes 1,0.8,0.64,0.5,0.36]

The ceiling beside every coverage figure (`*_real_reference`) is the coverage of the training images'
neighbourhoods by the real holdout images of a class: a few dozen images on BreastMNIST, so one split
gives one noisy draw. This prints it for the official split and for `--resplits` stratified 80/20
re-splits of the training split (seeds 0..N-1; seed 0 is `benchmarks/image_gan.py --development`'s
split), each in its own extractor (the evaluate stage's first label checker, trained on that split's
training images), beside what identical distributions give on average: about 1 - exp(-k m / n) for m
holdout images over n training images and k = 5 neighbours (each image lands in about k balls). A
generator's coverage uses the holdout only for its size, so comparing it with one split's ceiling
mixes the generator's shortfall with the ceiling's noise.

`--reference-sizes 1,0.8,0.64,0.5,0.36` also trains the class-conditional GAN at its defaults on the
official split and scores the rarest class against random subsets of that fraction of its training
images, m scored images kept at the split's ratio to n (20 subsets each), for the real holdout and for
the GAN's 300-image draw, in the same extractor. For real images the coverage at a fixed m/n does
not depend on n; for a generator whose images fall a little off the real ones it falls as n grows,
since each training image's neighbourhood shrinks: so coverage figures from training sets of
different sizes are not comparable even at the same ratio.
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch

from evaluation.images import class_fidelity, features, label_checkers, prdc
from synth.classifier import SmallCNN
from synth.generators.image_gan import ConditionalImageGAN
from synth.images import ImageSet, load_image_splits, split_images

NEIGHBOURS = 5  # class_fidelity's k


def split_extractor(train: ImageSet) -> SmallCNN:
    """The evaluate stage's feature extractor for a split: its first label-checker CNN."""
    return label_checkers(train, seed=0, members=1)[0]


def ceilings(train: ImageSet, holdout: ImageSet, extractor: SmallCNN) -> dict[str, dict[str, float]]:
    """Per class: the holdout's coverage of the training images (the evaluate stage's real reference)."""
    f_train, f_hold = features(extractor, train.images), features(extractor, holdout.images)
    scores = class_fidelity(f_train, train.labels, f_hold, holdout.labels, f_hold, holdout.labels,
                            train.class_names)
    out = {}
    for k, name in enumerate(train.class_names):
        n, m = int((train.labels == k).sum()), int((holdout.labels == k).sum())
        key = f"fidelity_coverage_real_reference_{name}"
        if key in scores:
            out[name] = {"coverage": scores[key], "train_images": n, "holdout_images": m,
                         "identical_expected": float(1 - np.exp(-NEIGHBOURS * m / n))}
    return out


def coverage_by_reference_size(train: ImageSet, holdout: ImageSet, extractor: SmallCNN, fractions: list[float],
                               iterations: int | None = None, subsets: int = 20) -> list[dict[str, float]]:
    """The rarest class's coverage by real holdout images and by the GAN's draw, against random
    subsets of its training images (the module docstring says why)."""
    rarest = int(np.bincount(train.labels).argmin())
    model = ConditionalImageGAN(**({"iterations": iterations} if iterations else {})).fit(train)
    synthetic = model.sample(300, {"label": rarest}, seed=1)  # benchmarks/image_gan.py's request
    f_train, f_hold, f_syn = (features(extractor, images) for images in (
        train.images[train.labels == rarest], holdout.images[holdout.labels == rarest], synthetic.images))
    rng = np.random.default_rng(0)
    rows = []
    for fraction in fractions:
        n = min(len(f_train), max(3, round(fraction * len(f_train))))
        m = min(len(f_hold), max(3, round(n * len(f_hold) / len(f_train))))
        neighbours = min(NEIGHBOURS, m - 1, n - 1)  # class_fidelity's rule
        real, generated = [], []
        for _ in range(subsets):
            reference = f_train[rng.choice(len(f_train), n, replace=False)]
            real.append(prdc(reference, f_hold[rng.choice(len(f_hold), m, replace=False)], neighbours)["coverage"])
            generated.append(prdc(reference, f_syn[rng.choice(len(f_syn), m, replace=False)], neighbours)["coverage"])
        rows.append({"class": train.class_names[rarest], "train_images": n, "scored_images": m,
                     "real": float(np.mean(real)), "generator": float(np.mean(generated)),
                     "generator_std": float(np.std(generated, ddof=1))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:breastmnist")
    parser.add_argument("--resplits", type=int, default=12)
    parser.add_argument("--reference-sizes", default="",
                        help="comma-separated fractions of the rarest class's training images (trains the GAN)")
    parser.add_argument("--iterations", type=int, help="the GAN's training steps (quick runs)")
    parser.add_argument("--json")
    args = parser.parse_args()
    train, holdout = load_image_splits(args.data)
    official = split_extractor(train)  # trained once, for the official ceiling and the size table
    rows = {"official": ceilings(train, holdout, official)}
    for seed in range(args.resplits):
        resplit_train, resplit_holdout = split_images(train, 0.2, seed)
        rows[f"resplit {seed}"] = ceilings(resplit_train, resplit_holdout, split_extractor(resplit_train))
    classes = list(rows["official"])
    print("split        " + "  ".join(f"{c:>24}" for c in classes))
    for split, per_class in rows.items():
        print(f"{split:<12} " + "  ".join(
            f"{per_class[c]['coverage']:.3f} ({per_class[c]['holdout_images']:>3} / {per_class[c]['train_images']:>3})"
            .rjust(24) for c in classes))
    summary = {}
    for c in classes:
        values = [rows[f"resplit {s}"][c]["coverage"] for s in range(args.resplits)]
        summary[c] = {"resplit_mean": float(np.mean(values)), "resplit_std": float(np.std(values, ddof=1)),
                      "official": rows["official"][c]["coverage"],
                      "identical_expected_official": rows["official"][c]["identical_expected"]}
        print(f"{c}: re-splits {np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (min {min(values):.3f}, "
              f"max {max(values):.3f}); official {summary[c]['official']:.3f}; identical distributions "
              f"≈ {summary[c]['identical_expected_official']:.3f}")
    sizes = []
    if args.reference_sizes:
        fractions = [float(f) for f in args.reference_sizes.split(",")]
        sizes = coverage_by_reference_size(train, holdout, official, fractions, args.iterations)
        print(f"{sizes[0]['class']}, official split, against subsets of its training images:")
        print("training images  scored  real holdout  GAN (std over subsets)")
        for row in sizes:
            print(f"{row['train_images']:>15}  {row['scored_images']:>6}  {row['real']:>12.3f}  "
                  f"{row['generator']:.3f} ({row['generator_std']:.3f})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads", "data": args.data,
                       "splits": rows, "summary": summary, "by_reference_size": sizes}, handle, indent=1)


if __name__ == "__main__":
    main()
