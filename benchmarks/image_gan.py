"""Image GAN speed and memory on this machine: training images per second at 28 and 64 px,
time to reach a feature-space distance on BreastMNIST, peak memory; on a GPU when present.

    python benchmarks/image_gan.py [--iterations 1000] [--eval-every 200] [--json out.json]

"Time to distance": training pauses every --eval-every iterations (pauses not counted) and the
Fréchet distance of 600 samples to the real training set, in the feature space of a CNN trained
on the real data, is compared with --target-ratio × the real-holdout-to-train distance.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch

from evaluation.images import features, frechet_distance, train_classifier
from synth.generators.image_gan import ConditionalImageGAN
from synth.images import ImageSet, load_image_splits


def images_per_second(size: int, iterations: int, device: str) -> float:
    rng = np.random.default_rng(0)
    fake = ImageSet(rng.integers(0, 255, (256, size, size), dtype=np.uint8), rng.integers(0, 2, 256), ["a", "b"])
    model = ConditionalImageGAN(iterations=iterations, device=device)
    start = time.perf_counter()
    model.fit(fake)
    return iterations * model.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--target-ratio", type=float, default=10.0)
    parser.add_argument("--speed-iterations", type=int, default=30)
    parser.add_argument("--json")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}")
    result = {"device": name}
    for size in (28, 64):
        result[f"images_per_s_{size}px"] = images_per_second(size, args.speed_iterations, device)
        print(f"training images/s at {size} px: {result[f'images_per_s_{size}px']:.0f}")

    train, holdout = load_image_splits("builtin:breastmnist")
    extractor = train_classifier(train.images, train.labels, len(train.class_names))
    f_train = features(extractor, train.images)
    reference = frechet_distance(features(extractor, holdout.images), f_train)
    target = args.target_ratio * reference
    model = ConditionalImageGAN(iterations=args.eval_every, device=device)
    trained_s, reached, curve = 0.0, None, []
    for done in range(args.eval_every, args.iterations + 1, args.eval_every):
        start = time.perf_counter()
        model.partial_fit(train, args.eval_every) if done > args.eval_every else model.fit(train)
        trained_s += time.perf_counter() - start
        distance = frechet_distance(features(extractor, model.sample(600).images), f_train)
        curve.append((done, trained_s, distance))
        print(f"iteration {done:5d}  train {trained_s:6.1f} s  FD {distance:.3f}  (real reference {reference:.3f})")
        if reached is None and distance <= target:
            reached = trained_s
    result.update({"real_reference_fd": reference, "target_fd": target, "time_to_target_s": reached,
                   "curve": curve, "peak_mem_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    if device == "cuda":
        result["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    reached_text = f"{reached:.1f} s" if reached is not None else f"not reached in {args.iterations} iterations"
    print(f"time to FD ≤ {target:.3f}: {reached_text}; peak memory {result['peak_mem_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
