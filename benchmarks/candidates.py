"""Candidate generators: N trainings one after another against the same N on a Dask cluster, side by side.

    python benchmarks/candidates.py [--candidates 4] [--workers 2] [--epochs 100] [--json out.json]
    python benchmarks/candidates.py --simulated 5000 --epochs 30   # simulated admissions instead

Both sides run the flow's own candidate task (train, sample, score) on one loaded and split table:
sequentially in this process with torch's default threads, then through the flow's
`train-candidates` subflow on a `LocalCluster` of one-thread worker processes. The Dask wall time
includes starting the cluster and Prefect's task bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:breast_cancer")
    parser.add_argument("--target", default="diagnosis")
    parser.add_argument("--simulated", type=int, metavar="ROWS",
                        help="use this many simulated admissions (target: outcome) instead of --data")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="synthaug-candidates-") as tmp:
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        from pipelines import stages
        from pipelines.flow import candidate_task, dask_runner, train_candidates
        from pipelines.settings import Settings, build_request
        from pipelines.workspace import Workspace
        from synth.simulated import simulated_admissions

        if args.simulated:
            args.data, args.target = str(Path(tmp) / f"admissions_{args.simulated}.csv"), "outcome"
            simulated_admissions(args.simulated).to_csv(args.data, index=False)
        request = build_request(data=args.data, target=args.target, rows=args.rows, epochs=args.epochs,
                                candidates=args.candidates)
        ws = Workspace(Path(tmp) / "run")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stages.load(request, ws)
            stages.split(request, ws)
        candidates = request.candidate_requests()

        start = time.perf_counter()
        for index, candidate in enumerate(candidates):
            candidate_task.fn(candidate, ws.candidate(100 + index))
        sequential_s = time.perf_counter() - start

        settings = Settings.from_env().model_copy(update={"dask_address": None, "dask_workers": args.workers})
        runner = dask_runner(settings)
        start = time.perf_counter()
        train_candidates.with_options(task_runner=runner)(candidates, [ws.candidate(i) for i in range(len(candidates))])
        dask_s = time.perf_counter() - start

    data = f"simulated admissions, {args.simulated} rows" if args.simulated else args.data
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "data": data,
              "candidates": len(candidates), "workers": args.workers, "epochs": args.epochs,
              "sequential_s": round(sequential_s, 1), "dask_s": round(dask_s, 1),
              "speedup": round(sequential_s / dask_s, 2)}
    print(f"{len(candidates)} candidates, {args.epochs} epochs on {data}: sequential {sequential_s:.1f} s, "
          f"Dask LocalCluster ({args.workers} workers x 1 thread) {dask_s:.1f} s, speed-up {sequential_s / dask_s:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
