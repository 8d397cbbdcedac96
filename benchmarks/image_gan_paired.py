"""Settings of the class-conditional GAN compared seed by seed on a development split.

    python benchmarks/image_gan_paired.py --arms '{"base": {}, "wide": {"g_width": 24}}' --seeds 0-7
                                          [--workers 2] [--jsonl out.jsonl] [--records FILE:NAME=ARM ...]
                                          [--compare base wide] [--split-seed 0] [--iterations N] [--device cpu]
                                          [--draw-variants '{"plain": {"typical_draws": 1}}']

One training's malignant coverage moves by 0.05-0.10 with its seed, and the difference between two
settings trained on the same seed has a standard deviation of 0.08-0.11 (benchmarks/HISTORY.md,
"Images, sessions 27–29"), so a setting is judged on the same seeds as the one it would replace, by the mean of the paired
differences and the share of seeds it wins. Each training (one arm, one seed) runs in its own process at
one thread, `--workers` at a time; its `label=R rows=300` draw of `benchmarks/image_gan.py` is scored by
`evaluation.images.image_fidelity` against the development fifth (`split_images(train, 0.2,
seed=--split-seed)`; the official test split is never looked at), by label-checker CNNs trained once, at
two threads, before the trainings start (their features differ with the thread count, so every figure of
one comparison must come from one such set: on the development split of seed 0 the real images' coverage
is 0.619 at two threads).

Every training appends one line to `--jsonl` (the arm, seed, its full parameters, device, training
seconds, the fidelity scores and the commit), and a rerun skips the (arm, seed, parameters, device)
already there, so a comparison can be extended seed by seed across sessions; keep one kind of machine
and device per file (CNN rounding differs between processors, and `--device cuda` trains in bf16).
`--records` adds earlier files' lines to the summary only, each file with the lines it contributes and
the arm they count as (`FILE:NAME=ARM`, e.g. an earlier session's trainings of today's defaults on the
same kind of machine); a line of this run replaces an earlier one of the same arm and seed.
`--compare A B` prints the paired differences of B against A and the rule: B is better if its mean
gain is at least `--min-gain` and it is higher on at least `--min-share` of the seeds; with
`--stop-early` the run ends (pending and running trainings dropped) as soon as B has lost so many seeds
that winning all the rest would leave it short of that share: the rule, applied mechanically rather
than by whoever watches the log. To stop a run by hand, signal its process group (`kill -- -PGID`):
the training processes outlive a parent stopped alone and keep the cores busy until their trainings end.
`--draw-variants` compares settings that act only at sampling on the very same trainings: each trained
arm is drawn again with each variant's settings, recorded as the arm `ARM:VARIANT`.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import time
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from evaluation.images import image_fidelity, label_checkers
from image_gan import requests  # benchmarks/image_gan.py, beside this script
from synth.generators.image_gan import ConditionalImageGAN
from synth.images import ImageSet, load_image_splits, split_images

KEPT = ("coverage", "recall", "precision", "density", "fid", "label_agreement_relative_min", "label_agreement_min",
        "coverage_real_reference")
# what identifies a training: everything but how it was run
NOT_SETTINGS = ("seed", "threads", "device")


def seed_range(text: str) -> list[int]:
    """'0-7' or '0,3,5' or '8-11,14'."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def settings(params: dict) -> dict:
    return {key: value for key, value in params.items() if key not in NOT_SETTINGS}


def train_and_draw(task: tuple[str, dict, int, ImageSet, str, dict]) -> list[tuple[str, dict, int, dict, float, np.ndarray, np.ndarray]]:
    """One training (arm, params, seed, images, device, variants) at one thread, and its `label=R
    rows=300` draw (R the rarest class), as `benchmarks/image_gan.py`'s first request samples it; then
    that draw again with each sampling variant's settings. Each draw as (name, the settings asked for,
    seed, full parameters, training seconds, images, labels)."""
    name, params, seed, train, device, variants = task
    model = ConditionalImageGAN(**{**params, "seed": seed, "threads": 1, "device": device})
    started = time.perf_counter()
    model.fit(train)
    train_s = time.perf_counter() - started
    out = []
    for variant, overrides in {"": {}, **variants}.items():
        drawn = copy.copy(model)
        for key, value in overrides.items():
            setattr(drawn, key, value)
        images, _ = next(iter(requests(drawn, train).values()))
        out.append((f"{name}:{variant}" if variant else name, {**params, **overrides}, seed, drawn.get_params(),
                    train_s, images.images, images.labels))
    return out


def commit() -> str:
    """The code a training ran: the commit, with "-dirty" when the working tree had changes (a trial's)."""
    done = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                          cwd=Path(__file__).parent)
    return done.stdout.strip() or "unknown"


def run(arms: dict[str, dict], seeds: list[int], train: ImageSet, holdout: ImageSet, workers: int,
        jsonl: Path | None, device: str, stop: Callable[[list[dict]], str | None] | None = None,
        variants: dict[str, dict] | None = None) -> list[dict]:
    """Train every (arm, seed) not already in `jsonl`, score each draw as it finishes, append its line;
    end early once `stop`, given the lines so far, says why."""
    done = load(jsonl) if jsonl else []
    have = {(r["name"], r["seed"], json.dumps(settings(r.get("full_params", {})), sort_keys=True),
             r.get("device", "cpu")) for r in done}
    keys = {name: json.dumps(settings(ConditionalImageGAN(**params).get_params()), sort_keys=True)
            for name, params in arms.items()}
    todo = [(name, seed) for seed in seeds for name in arms if (name, seed, keys[name], device) not in have]
    if not todo:
        return done
    torch.set_num_threads(2)
    checkers = label_checkers(train)
    version = commit()
    tasks = [(name, arms[name], seed, train, device, variants or {}) for name, seed in todo]
    with get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:  # leaving the block terminates it
        for draws in pool.imap_unordered(train_and_draw, tasks):
            for name, params, seed, full, train_s, images, labels in draws:
                metrics = image_fidelity(train, holdout, ImageSet(images, labels, train.class_names), checkers)[0]
                record = {"name": name, "seed": seed, "params": params, "full_params": full, "train_s": train_s, "threads": 1, "device": device, "commit": version,
                          **{f"fidelity_{key}": metrics[f"fidelity_{key}"] for key in KEPT}}
                print(f"{name} seed {seed}: coverage {record['fidelity_coverage']:.3f}, recall "
                      f"{record['fidelity_recall']:.3f}, label agreement {record['fidelity_label_agreement_min']:.3f}, "
                      f"trained in {train_s:.0f} s", flush=True)
                done.append(record)
                if jsonl:
                    with jsonl.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
            if stop and (why := stop(done)):
                print(f"stopped early: {why}", flush=True)
                break
    return done


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def renamed(spec: str) -> list[dict]:
    """The lines of FILE:NAME=ARM,... whose name is listed, renamed to their arm."""
    path, _, names = spec.partition(":")
    arms = dict(pair.split("=") for pair in names.split(",")) if names else {}
    return [{**r, "name": arms[r["name"]]} for r in load(Path(path)) if r["name"] in arms]


def table(records: list[dict], names: list[str], seeds: list[int]) -> dict[str, dict[int, dict]]:
    """Per arm and seed, the last record (a rerun replaces an earlier line)."""
    out: dict[str, dict[int, dict]] = {name: {} for name in names}
    for record in records:
        if record["name"] in out and record["seed"] in seeds:
            out[record["name"]][record["seed"]] = record
    return out


def print_summary(records: list[dict], names: list[str], seeds: list[int]) -> None:
    by_arm = table(records, names, seeds)
    print("\n| arm | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | recall | Fréchet distance |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for name in names:
        runs = by_arm[name]
        cells = [f"{runs[s]['fidelity_coverage']:.3f}" if s in runs else "–" for s in seeds]
        values = [r["fidelity_coverage"] for r in runs.values()]
        summary = [f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else "–",
                   f"{np.mean([r['fidelity_recall'] for r in runs.values()]):.3f}" if values else "–",
                   f"{np.mean([r['fidelity_fid'] for r in runs.values()]):.3f}" if values else "–"]
        print(f"| {name} | " + " | ".join(cells + summary) + " |")


def paired_differences(by_arm: dict[str, dict[int, dict]], base: str, other: str) -> tuple[list[int], np.ndarray]:
    """The seeds both arms have, and `other`'s coverage minus `base`'s on each."""
    paired = sorted(set(by_arm[base]) & set(by_arm[other]))
    return paired, np.array([by_arm[other][s]["fidelity_coverage"] - by_arm[base][s]["fidelity_coverage"]
                             for s in paired])


def out_of_reach(records: list[dict], base: str, other: str, seeds: list[int], min_share: float) -> str | None:
    """Why `other` can no longer be higher on `min_share` of `seeds` even if it wins every seed left, or None."""
    paired, diffs = paired_differences(table(records, [base, other], seeds), base, other)
    wins, left = int((diffs > 0).sum()), len(seeds) - len(paired)
    if wins + left < min_share * len(seeds):
        return (f"{other} is higher than {base} on {wins} of {len(paired)} seeds; winning the {left} left "
                f"would still fall short of {min_share:.0%} of {len(seeds)}")
    return None


def compare(records: list[dict], base: str, other: str, seeds: list[int], min_gain: float,
            min_share: float) -> dict:
    """Paired differences of `other` against `base` on the seeds both have, and the rule's verdict."""
    by_arm = table(records, [base, other], seeds)
    paired, diffs = paired_differences(by_arm, base, other)
    if len(diffs) < 2:
        return {"seeds": paired}
    result = {"seeds": paired, "differences": diffs.round(4).tolist(), "mean": float(diffs.mean()),
              "std": float(diffs.std(ddof=1)), "standard_error": float(diffs.std(ddof=1) / np.sqrt(len(diffs))),
              "higher": int((diffs > 0).sum()),
              "lowest_label_agreement": min(by_arm[other][s]["fidelity_label_agreement_relative_min"] for s in paired)}
    result["better"] = bool(result["mean"] >= min_gain and result["higher"] >= min_share * len(diffs))
    print(f"\n{other} against {base}, seeds {', '.join(map(str, paired))}: "
          + " / ".join(f"{d:+.3f}" for d in diffs)
          + f"; mean {result['mean']:+.3f} (std {result['std']:.3f}, standard error {result['standard_error']:.3f}), "
            f"higher on {result['higher']} of {len(diffs)}; lowest relative label agreement "
            f"{result['lowest_label_agreement']:.3f}. Rule (mean ≥ {min_gain:+.2f}, higher on ≥ {min_share:.0%}): "
          + ("met" if result["better"] else "not met"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:breastmnist")
    parser.add_argument("--arms", required=True, help='JSON: name -> settings on top of the defaults, e.g. {"base": {}}')
    parser.add_argument("--seeds", default="0-7", help="e.g. 0-7 or 8-11,14")
    parser.add_argument("--split-seed", type=int, default=0, help="the development split (0: the one settings were tuned on)")
    parser.add_argument("--iterations", type=int, help="override every arm's iterations (quick runs)")
    parser.add_argument("--workers", type=int, default=2, help="trainings at once, one thread each")
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda (bf16 there): compare only lines trained on the same kind of device")
    parser.add_argument("--jsonl", type=Path, help="append each training's line here; trainings already in it are skipped")
    parser.add_argument("--records", nargs="*", default=[],
                        help="earlier files for the summary only, as FILE:NAME=ARM[,NAME=ARM]: their lines "
                             "of each NAME, shown as ARM (earlier files named the defaults of their day 'base')")
    parser.add_argument("--compare", nargs=2, metavar=("BASE", "OTHER"))
    parser.add_argument("--json", type=Path, help="the summary: every arm's lines on these seeds and the comparison")
    parser.add_argument("--min-gain", type=float, default=0.02)
    parser.add_argument("--min-share", type=float, default=0.75)
    parser.add_argument("--draw-variants", default="{}",
                        help='JSON: name -> sampling-time settings each training is drawn with again, e.g. {"plain": {"typical_draws": 1}}')
    parser.add_argument("--stop-early", action="store_true",
                        help="with --compare: end the run once the share rule is out of reach")
    args = parser.parse_args()
    if args.stop_early and not args.compare:
        parser.error("--stop-early needs --compare")
    arms = json.loads(args.arms)
    if args.iterations:
        arms = {name: {**params, "iterations": args.iterations} for name, params in arms.items()}
    seeds = seed_range(args.seeds)
    train, _ = load_image_splits(args.data)
    train, holdout = split_images(train, 0.2, seed=args.split_seed)
    records = [r for spec in args.records for r in renamed(spec)]

    def out_of_reach_now(done: list[dict]) -> str | None:
        return out_of_reach(records + done, *args.compare, seeds, args.min_share)

    variants = json.loads(args.draw_variants)
    records += run(arms, seeds, train, holdout, args.workers, args.jsonl, args.device,
                   out_of_reach_now if args.stop_early else None, variants)
    names = list(dict.fromkeys([f"{arm}:{v}" if v else arm for arm in arms for v in ["", *variants]]
                               + list(args.compare or [])))
    print_summary(records, names, seeds)
    comparison = compare(records, *args.compare, seeds, args.min_gain, args.min_share) if args.compare else None
    if args.json:
        shown = table(records, names, seeds)
        args.json.write_text(json.dumps({"data": args.data, "split_seed": args.split_seed, "seeds": seeds,
                                         "arms": {name: list(runs.values()) for name, runs in shown.items()},
                                         "comparison": comparison}, indent=1))


if __name__ == "__main__":
    main()
