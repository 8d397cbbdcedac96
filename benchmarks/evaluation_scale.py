"""How long each score takes on a large table (issue: every score in seconds on 30,000 rows).

Scores 30,000 real training rows, a real holdout and 30,000 "synthetic" rows (a third real
sample of the simulated admissions table) on this machine, timing each score family, and
prints the peak resident memory. Nearest neighbours come from an index; the all-pairs
distance matrix that SDMetrics-style DCR would hold is printed for scale.

    python benchmarks/evaluation_scale.py [--rows 30000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
import warnings

import numpy as np

from evaluation import fidelity, privacy, utility
from synth.schema import infer_schema
from synth.simulated import simulated_admissions
from synth.tables import split_train_holdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000, help="training rows (synthetic rows: the same)")
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    n = args.rows
    table = simulated_admissions(n * 3, seed=1)
    kinds = infer_schema(table, target="outcome").kinds
    train, rest = split_train_holdout(table, "outcome", 1 - n / len(table), seed=0)
    holdout, synthetic = split_train_holdout(rest, "outcome", 0.5, seed=0)
    synthetic = synthetic.head(n)
    kinds = {c: k for c, k in kinds.items() if k != "id"}

    steps = {
        "column_shapes": lambda: fidelity.column_shapes(train, synthetic, kinds),
        "pair_trends": lambda: fidelity.pair_trends(train, synthetic, kinds),
        "adherence": lambda: fidelity.adherence(train, synthetic, kinds),
        "detection_auc": lambda: fidelity.detection_auc(train, synthetic, kinds),
        "dcr_and_copies": lambda: privacy.privacy_scores(train, holdout, synthetic, kinds),
        "membership_inference": lambda: privacy.membership_inference(train, holdout, synthetic, kinds),
        "attribute_inference": lambda: privacy.attribute_inference(train, holdout, synthetic, kinds, ["smoker", "bmi"]),
        "utility_3_seeds": lambda: utility.utility_scores(train, holdout, synthetic, kinds, "outcome"),
    }
    timings = {}
    print(f"train {len(train)}, holdout {len(holdout)}, synthetic {len(synthetic)} rows, "
          f"{len(kinds)} columns; {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} cores")
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        timings[name] = time.perf_counter() - start
        print(f"{name:24s} {timings[name]:7.2f} s")
    total = sum(timings.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    all_pairs_gb = len(synthetic) * len(train) * 8 / 1e9
    print(f"{'total':24s} {total:7.2f} s")
    print(f"peak resident memory {peak_mb:.0f} MB; an all-pairs distance matrix would hold {all_pairs_gb:.1f} GB")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": n, "seconds": timings, "total_s": total, "peak_mem_mb": peak_mb,
                       "all_pairs_matrix_gb": all_pairs_gb}, handle, indent=1)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
