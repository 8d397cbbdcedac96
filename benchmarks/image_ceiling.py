"""How much the real-holdout ceiling of the image coverage moves with the draw of the holdout.

    python benchmarks/image_ceiling.py [--data builtin:breastmnist] [--resplits 12] [--json out.json]

The ceiling beside every coverage figure (`*_real_reference`) is the coverage of the training images'
neighbourhoods by the real holdout images of a class: a few dozen images on BreastMNIST, so one split
gives one noisy draw. This prints it for the official split and for `--resplits` stratified 80/20
re-splits of the training split (seeds 0..N-1; seed 0 is `benchmarks/image_gan.py --development`'s
split), each in its own extractor (the evaluate stage's first label checker, trained on that split's
training images), beside what identical distributions give on average: about 1 - exp(-k m / n) for m
holdout images over n training images and k = 5 neighbours (each image lands in about k balls). A
generator's coverage uses the holdout only for its size, so comparing it with one split's ceiling
mixes the generator's shortfall with the ceiling's noise.
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch

from evaluation.images import class_fidelity, features, label_checkers
from synth.images import ImageSet, load_image_splits, split_images

NEIGHBOURS = 5  # class_fidelity's k


def ceilings(train: ImageSet, holdout: ImageSet) -> dict[str, dict[str, float]]:
    """Per class: the holdout's coverage of the training images (the evaluate stage's real reference)."""
    extractor = label_checkers(train, seed=0, members=1)[0]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:breastmnist")
    parser.add_argument("--resplits", type=int, default=12)
    parser.add_argument("--json")
    args = parser.parse_args()
    train, holdout = load_image_splits(args.data)
    rows = {"official": ceilings(train, holdout)}
    for seed in range(args.resplits):
        rows[f"resplit {seed}"] = ceilings(*split_images(train, 0.2, seed))
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
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads", "data": args.data,
                       "splits": rows, "summary": summary}, handle, indent=1)


if __name__ == "__main__":
    main()
