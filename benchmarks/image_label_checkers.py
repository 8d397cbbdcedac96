"""Do CNNs trained on the same real images agree on which class a generated image is?

    python benchmarks/image_label_checkers.py --seeds 0-4 [--data builtin:breastmnist] [--iterations N] [--json out.json]

The label-agreement gate refuses a draw whose rarest class's images the evaluation's five CNNs (trained on
every training image, seeds 0-4) call that class much less often than the real holdout images of it. On
the official split one training (seed 4) has fallen below it on two kinds of box, while the engine's own
five out-of-fold CNNs (the soft labels' and typicality matching's, trained on the training images alone)
found nothing wrong. For each training of the defaults (the `label=R rows=300` draw of
`benchmarks/image_gan.py`, plain and matched) this prints the share of the draw each of those CNNs, and
the gate's five together, assign to class R, beside the same CNNs' shares on the real holdout images of R
and the out-of-fold share on the training images of R, and each gate CNN's AUC of the draw (or the real
images of R) against the real holdout images of the other classes, which no threshold moves. Nothing here chooses a setting: it measures how
far a CNN's call on a generated image depends on which CNN makes it.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from evaluation.images import ensemble_vote, label_checkers, separation_auc
from synth.classifier import out_of_fold_probabilities, predict_proba
from synth.generators.image_gan import ConditionalImageGAN
from synth.images import load_image_splits


def judged(models: list, images: np.ndarray, k: int, others: list[np.ndarray] | None = None) -> dict:
    """Each CNN's share of `images` it assigns to class `k` (its most probable class), the share the CNNs
    together assign, and, given `others` (each CNN's probabilities for the real holdout images of the
    other classes), each CNN's AUC of class `k`'s probability against them, which no threshold moves."""
    probas = [predict_proba(m, images) for m in models]
    out = {"together": float((ensemble_vote(probas) == k).mean()),
           "shares": [round(float((p.argmax(1) == k).mean()), 3) for p in probas]}
    if others is not None:
        out["ranks"] = [round(separation_auc(p[:, k], q[:, k]), 3) for p, q in zip(probas, others)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:breastmnist")
    parser.add_argument("--seeds", default="0-4", help="trainings, e.g. 0-4")
    parser.add_argument("--iterations", type=int, help="override the engine's iterations (quick runs)")
    parser.add_argument("--json")
    args = parser.parse_args()
    first, last = (int(s) for s in args.seeds.split("-"))
    train, holdout = load_image_splits(args.data)
    rarest = int(np.bincount(train.labels).argmin())
    real = holdout.images[holdout.labels == rarest]
    gate = label_checkers(train)
    others = [predict_proba(m, holdout.images[holdout.labels != rarest]) for m in gate]
    on_real = judged(gate, real, rarest, others)
    result = {"data": args.data, "class": train.class_names[rarest], "gate_real_share": on_real["together"],
              "gate_members_real_shares": on_real["shares"], "gate_members_real_ranks": on_real["ranks"],
              "trainings": []}
    print(f"gate's CNNs on real holdout {result['class']} images: together {result['gate_real_share']:.3f}, "
          f"each {result['gate_members_real_shares']}; AUC against the other classes' {result['gate_members_real_ranks']}")
    for seed in range(first, last + 1):
        start = time.perf_counter()
        model = ConditionalImageGAN(seed=seed, **({"iterations": args.iterations} if args.iterations else {})).fit(train)
        row = {"seed": seed, "train_s": time.perf_counter() - start,
               "folds_real_shares": judged(model.checkers_, real, rarest)["shares"]}
        # the engine keeps its fold CNNs but no training image's probability: recomputed (same seed, same folds)
        proba, _ = out_of_fold_probabilities(train, seed=seed)
        row["out_of_fold_train_share"] = float((proba[train.labels == rarest].argmax(1) == rarest).mean())
        for draws in (1, model.typical_draws):
            model.typical_draws = draws
            images = model.sample(300, {"label": rarest}, seed=1).images
            by_gate, by_folds = judged(gate, images, rarest, others), judged(model.checkers_, images, rarest)
            row[f"draws_{draws}"] = {
                "gate_share": by_gate["together"], "gate_members_shares": by_gate["shares"],
                "gate_members_ranks": by_gate["ranks"],
                "folds_together_share": by_folds["together"], "folds_shares": by_folds["shares"]}
        result["trainings"].append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
