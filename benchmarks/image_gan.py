"""The image engines side by side on BreastMNIST (or any image source `--data` takes: another
MedMNIST-layout `.npz`, a folder of class folders): the class-conditional GAN (`image_gan`) and the
translation GAN (`translate`: majority-class images translated into the rarest class), each at its defaults:
training and evaluation time, Fréchet distance, precision/recall/density/coverage beside the real-holdout ceiling,
label agreement, and the classifier table of the image utility scores, for the two requests of
issues #13 and #14.

    python benchmarks/image_gan.py [--data builtin:breastmnist] [--engines image_gan,translate] [--seeds 5]
                                   [--train-seeds 1] [--json out.json] [--speed-iterations 30] [--development]

Each engine is trained once (the request's seed, 0) and sampled twice: `--condition label=R --rows
300`, R the rarest class (0, malignant, on BreastMNIST), and `--balance` (every class up to the
largest). Every figure comes from
`evaluation.images.evaluate_images`, the function the flow's evaluate stage calls, so these are the
numbers a report would show; for translation also the round-trip (cycle) error and how close each
image stays to its own source. `--speed-iterations N` adds the class-conditional GAN's training
images per second at 28 and 64 px. `--development` is for choosing settings: it trains on a
stratified 80 % of the training split and scores against the other 20 %, so the official test split
(the holdout every reported figure uses) is never looked at while tuning; `--split-seed S` draws
another such split (seed 0 is the one settings were tuned on), to tell a setting's gain from the
luck of one split. `--train-seeds N` trains
each engine N times (seeds 0..N-1 at the default seed) and adds every training's fidelity scores with
their mean and standard deviation: one training's coverage is one draw from a spread about as wide as
the gap between settings (benchmarks/HISTORY.md, sessions 21-23), and a request publishes one training.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch

from evaluation.images import ARMS, evaluate_images, image_fidelity, label_checkers, translation_scores
from synth.generators import ImageGenerator, engine_class
from synth.generators.image_gan import ConditionalImageGAN
from synth.images import ImageSet, load_image_splits, split_images

SHOWN = ("fid", "fid_real_reference", "precision", "recall", "recall_real_reference", "density", "coverage",
         "coverage_real_reference", "label_agreement_min", "label_agreement_relative_min",
         "label_separation_relative_min")
TRANSLATION_SHOWN = ("fidelity_translation_cycle_error", "privacy_translation_source_rmse",
                     "privacy_translation_other_rmse", "privacy_translation_nearer_source")


def images_per_second(size: int, iterations: int, device: str) -> float:
    rng = np.random.default_rng(0)
    fake = ImageSet(rng.integers(0, 255, (256, size, size), dtype=np.uint8), rng.integers(0, 2, 256), ["a", "b"])
    model = ConditionalImageGAN(iterations=iterations, device=device)
    start = time.perf_counter()
    model.fit(fake)
    return iterations * model.batch_size / (time.perf_counter() - start)


def requests(model: ImageGenerator, train: ImageSet) -> dict[str, tuple[ImageSet, dict]]:
    """Both requests' images, with the translation's own scores where the engine translates."""
    counts = dict(enumerate(np.bincount(train.labels, minlength=len(train.class_names)).tolist()))
    rarest = min(counts, key=counts.get)
    sources = {"sources": train} if model.needs_sources else {}
    out = {}
    for request, draw in ((f"label={rarest} rows=300",
                           lambda: model.sample(300, {"label": rarest}, seed=1, **sources)),
                          ("balance", lambda: model.sample_balanced(counts, seed=1, **sources))):
        images = draw()
        extra = {}
        if model.needs_sources:
            picked = train.images[model.source_indices_]
            extra = {"fidelity_translation_cycle_error": model.cycle_error(picked),
                     **translation_scores(train, images, model.source_indices_)}
        out[request] = (images, extra)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:breastmnist",
                        help="any image source a request takes (a MedMNIST-layout .npz keeps its official split)")
    parser.add_argument("--engines", default="image_gan,translate", help="comma-separated image engines")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the utility arms")
    parser.add_argument("--train-seeds", type=int, default=1,
                        help="trainings per engine (seeds 0..N-1); the first gets every score, the others fidelity")
    parser.add_argument("--iterations", type=int, help="override every engine's iterations (quick runs)")
    parser.add_argument("--params", default="{}", help='JSON: per engine, settings tried on top of its defaults, '
                                                       'e.g. {"translate": {"blocks": 6}}')
    parser.add_argument("--speed-iterations", type=int, default=0)
    parser.add_argument("--development", action="store_true",
                        help="train on 80 %% of the training split, score against the other 20 %% (for tuning)")
    parser.add_argument("--split-seed", type=int, default=0,
                        help="with --development: the seed of the 80/20 split (0 is the split settings were tuned on)")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}")
    result: dict = {"device": name, "configs": {}}
    for size in (28, 64) if args.speed_iterations else ():
        result[f"images_per_s_{size}px"] = images_per_second(size, args.speed_iterations, device)
        print(f"training images/s at {size} px: {result[f'images_per_s_{size}px']:.0f}")

    train, holdout = load_image_splits(args.data)
    result["data"] = args.data
    if args.development:
        train, holdout = split_images(train, 0.2, seed=args.split_seed)
        result["development"] = True
        result["split_seed"] = args.split_seed
    tried = json.loads(args.params)
    for engine in args.engines.split(","):
        params = dict(tried.get(engine, {}))
        if args.iterations:
            params["iterations"] = args.iterations
        model = engine_class(engine, "images")(device=device, **params)
        start = time.perf_counter()
        model.fit(train)
        entry = {"params": model.get_params(), "train_s": time.perf_counter() - start, "requests": {}}
        print(f"{engine}: trained {model.iterations} iterations in {entry['train_s']:.0f} s")
        for request, (synthetic, extra) in requests(model, train).items():
            start = time.perf_counter()
            metrics = {**evaluate_images(train, holdout, synthetic, seeds=args.seeds).metrics, **extra}
            entry["requests"][request] = {"images": len(synthetic), "metrics": metrics,
                                          "evaluate_s": time.perf_counter() - start}
        if args.train_seeds > 1:
            entry["trainings"] = trainings(engine, params, device, train, holdout, entry, args.train_seeds)
        result["configs"][engine] = entry
    result["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_tables(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


def trainings(engine: str, params: dict, device: str, train: ImageSet, holdout: ImageSet, first: dict,
              n: int) -> list[dict]:
    """Fidelity of `n` trainings of one engine: the first (already scored in `first`) and the next n-1
    seeds, each scored by the same label-checker CNNs as the evaluate stage's."""
    first_seed = first["params"]["seed"]
    out = [{"seed": first_seed, "train_s": first["train_s"],
            "requests": {r: shown(v["metrics"]) for r, v in first["requests"].items()}}]
    checkers = label_checkers(train)
    for seed in range(first_seed + 1, first_seed + n):
        model = engine_class(engine, "images")(device=device, **{**params, "seed": seed})
        start = time.perf_counter()
        model.fit(train)
        train_s = time.perf_counter() - start
        scored = {r: shown(image_fidelity(train, holdout, images, checkers)[0])
                  for r, (images, _) in requests(model, train).items()}
        out.append({"seed": seed, "train_s": train_s, "requests": scored})
        print(f"{engine} seed {seed}: trained in {train_s:.0f} s, coverage "
              + ", ".join(f"{r} {m['coverage']:.3f}" for r, m in scored.items()))
    return out


def shown(metrics: dict) -> dict[str, float]:
    return {key: metrics[f"fidelity_{key}"] for key in SHOWN if f"fidelity_{key}" in metrics}


def print_trainings(result: dict) -> None:
    for engine, entry in result["configs"].items():
        runs = entry.get("trainings")
        if not runs:
            continue
        print(f"\n{engine}, {len(runs)} trainings (seeds {', '.join(str(r['seed']) for r in runs)}): "
              f"training {np.mean([r['train_s'] for r in runs]):.0f} s on average")
        print("| request | measure | " + " | ".join(f"seed {r['seed']}" for r in runs) + " | mean ± std |")
        print("|---|---|" + "---|" * (len(runs) + 1))
        for request in runs[0]["requests"]:
            for key in ("coverage", "recall", "fid", "label_agreement_relative_min"):
                values = [r["requests"][request].get(key, float("nan")) for r in runs]
                print(f"| {request} | {key} | " + " | ".join(f"{v:.3f}" for v in values)
                      + f" | {np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} |")


def print_tables(result: dict) -> None:
    configs = result["configs"]
    columns = [(c, r) for c in configs for r in configs[c]["requests"]]
    print("\n| measure | " + " | ".join(f"{c}, {r}" for c, r in columns) + " |")
    print("|---|" + "---|" * len(columns))
    print("| training s | " + " | ".join(f"{configs[c]['train_s']:.0f}" for c, _ in columns) + " |")
    print("| evaluate s (the evaluate stage's scores) | " + " | ".join(
        f"{configs[c]['requests'][r].get('evaluate_s', float('nan')):.0f}" for c, r in columns) + " |")
    for key in SHOWN:
        values = [configs[c]["requests"][r]["metrics"].get(f"fidelity_{key}", float("nan")) for c, r in columns]
        print(f"| {key} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    for key in TRANSLATION_SHOWN:
        values = [configs[c]["requests"][r]["metrics"].get(key) for c, r in columns]
        print(f"| {key} | " + " | ".join("n/a" if v is None else f"{v:.3f}" for v in values) + " |")
    for arm in ARMS:
        cells = []
        for c, r in columns:
            m = configs[c]["requests"][r]["metrics"]
            mean = m.get(f"utility_cnn_{arm}_auc")
            cells.append("n/a" if mean is None else f"{mean:.3f} ± {m[f'utility_cnn_{arm}_auc_std']:.3f}")
        print(f"| CNN AUC, {arm} | " + " | ".join(cells) + " |")
    lifts = [configs[c]["requests"][r]["metrics"] for c, r in columns]
    print("| lift (best with synthetic − best without), 95 % interval | " + " | ".join(
        f"{m['utility_cnn_lift']:+.3f} ({m['utility_cnn_lift_low']:+.3f}, {m['utility_cnn_lift_high']:+.3f})"
        for m in lifts) + " |")
    print_trainings(result)
    print(f"\npeak memory {result['peak_mem_mb']:.0f} MB")


if __name__ == "__main__":
    main()
