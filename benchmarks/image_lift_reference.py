"""How much would new real images lift the classifier? The most a generator's images could give.

    python benchmarks/image_lift_reference.py [--data builtin:breastmnist] [--partitions 0] [--seeds 5]
                                              [--iterations N] [--json out.json]

Issue #13's bar asks the best utility arm with synthetic images to beat the best arm without them by at
least 0.01 AUC and by more than one standard deviation over 5 seeds. No run has met it. A generator trained
on the training images carries no information they lack, so its images can lift a classifier at most as
much as new real images of the same class would. The official split has no such images; a half of it does.
Each stratified partition of the training images into halves is used both ways round: one half is the
training set, the other half the reserve of "new" real images. Each half's additions are scored by
`evaluation.images.image_utility` (the evaluate stage's utility arms, the same steps for every arm, the
official holdout as holdout) as if they were synthetic images:

- the reserve's images of the rarest class (what a perfect generator's `--condition label=R` request of
  that many images would add);
- the whole reserve (twice the real images: the training set the full split has);
- the class-conditional GAN trained on the half at its defaults: a draw of as many class-R images as the
  reserve holds, and the request's 300.

Nothing is chosen here: it measures what the lift bar asks of a generator at this size of data.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from evaluation.images import best_arms, image_utility
from image_gan_paired import seed_range  # benchmarks/image_gan_paired.py, beside this script
from synth.generators.image_gan import ConditionalImageGAN
from synth.images import ImageSet, load_image_splits, split_images


def lift(train: ImageSet, holdout: ImageSet, added: ImageSet, seeds: int) -> dict:
    """The utility arms with `added` as the synthetic images: the two best arms, their AUCs and the lift."""
    scores = image_utility(train, holdout, added, len(train.class_names), 0, seeds)
    with_, without = best_arms(scores)
    return {"images": len(added), "best_with": with_, "best_without": without,
            "auc_with": scores[f"utility_cnn_{with_}_auc"], "auc_without": scores[f"utility_cnn_{without}_auc"],
            "lift": scores["utility_cnn_lift"], "lift_std": scores["utility_cnn_lift_std"],
            "lift_low": scores["utility_cnn_lift_low"], "lift_high": scores["utility_cnn_lift_high"],
            "meets_bar": bool(scores["utility_cnn_lift"] >= 0.01
                              and scores["utility_cnn_lift"] > scores["utility_cnn_lift_std"])}


def half(train: ImageSet, reserve: ImageSet, holdout: ImageSet, rarest: int, seeds: int,
         iterations: int | None) -> dict:
    """Every addition to one half, scored; the GAN trained on that half alone."""
    own = reserve.subset(np.flatnonzero(reserve.labels == rarest))
    out = {"train_images": len(train), "reserve_images": len(reserve), "additions": {}}
    out["additions"]["real_rarest"] = lift(train, holdout, own, seeds)
    out["additions"]["real_all"] = lift(train, holdout, reserve, seeds)
    start = time.perf_counter()
    model = ConditionalImageGAN(**({"iterations": iterations} if iterations else {})).fit(train)
    out["gan_train_s"] = time.perf_counter() - start
    for name, rows in (("gan_rarest_same_count", len(own)), ("gan_rarest_300", 300)):
        out["additions"][name] = lift(train, holdout, model.sample(rows, {"label": rarest}, seed=1), seeds)
    return out


def print_table(result: dict) -> None:
    names = list(result["halves"][0]["additions"])
    print("| half | addition | images | best arm with | best arm without | AUC with | AUC without | lift (std), "
          "95 % interval | bar met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for h in result["halves"]:
        for name in names:
            a = h["additions"][name]
            print(f"| {h['partition']}{h['side']} | {name} | {a['images']} | {a['best_with']} | {a['best_without']} | "
                  f"{a['auc_with']:.3f} | {a['auc_without']:.3f} | {a['lift']:+.3f} ({a['lift_std']:.3f}), "
                  f"({a['lift_low']:+.3f}, {a['lift_high']:+.3f}) | {'yes' if a['meets_bar'] else 'no'} |")
    for name in names:
        lifts = [h["additions"][name]["lift"] for h in result["halves"]]
        print(f"{name}: mean lift over {len(lifts)} halves {np.mean(lifts):+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:breastmnist")
    parser.add_argument("--partitions", default="0",
                        help="seeds of the stratified halvings of the training images, e.g. 0-1; each used both ways")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the utility arms")
    parser.add_argument("--iterations", type=int, help="override the GAN's iterations (quick runs)")
    parser.add_argument("--json")
    args = parser.parse_args()
    result = {"data": args.data, "device": f"{platform.processor() or platform.machine()} CPU, "
                                           f"{torch.get_num_threads()} threads", "halves": []}
    train, holdout = load_image_splits(args.data)
    rarest = int(np.bincount(train.labels).argmin())
    result["class"] = train.class_names[rarest]
    for partition in seed_range(args.partitions):
        first, second = split_images(train, 0.5, seed=partition)
        for side, (kept, reserve) in (("a", (first, second)), ("b", (second, first))):
            row = {"partition": partition, "side": side, **half(kept, reserve, holdout, rarest, args.seeds,
                                                                 args.iterations)}
            result["halves"].append(row)
            print(json.dumps(row), flush=True)
    print_table(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
