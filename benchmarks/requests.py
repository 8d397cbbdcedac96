"""What a request costs around its training, measured from outside as a user runs it.

1. Overhead: two `synthaug augment --data builtin:breast_cancer --target diagnosis --epochs 1 --json`
   requests in one fresh state folder, no PREFECT_API_URL. Overhead = the process's wall time minus
   the stages' own seconds in the summary's `timings` (load, split, train, sample, evaluate, track,
   publish); the first request also pays the local Prefect server's start (`prefect_server_start`).
   The second runs in the local server's warm process (`runner`); `track` is shown apart.
2. Large draws: `--rows 30000` and `--rows 1000000` on the simulated 30,000-row admissions table
   (a CSV written here), peak RSS of each request's process tree side by side (run in their own
   process, `SYNTHAUG_WARM_PROCESS=off`, so the tree measured is the request's).

    python benchmarks/requests.py [--skip-large] [--epochs-large 5] [--json out.json]

Each request runs in a wrapper process whose RUSAGE_CHILDREN gives the peak RSS of the request
(the shared local server is a process of its own and is not counted: later requests reuse it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STAGES = ("load", "split", "train", "sample", "evaluate", "track", "publish")
WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"wall_s": time.perf_counter() - started, "returncode": done.returncode, "stdout": done.stdout,
                  "stderr": done.stderr[-2000:],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def request(args: list[str], env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "pipelines.cli", "augment", *args,
                          "--json"], capture_output=True, text=True, env=env, cwd=ROOT)
    measured = json.loads(out.stdout)
    if measured["returncode"] not in (0, 1):
        raise RuntimeError(f"request failed: {measured['stderr']}")
    summary = json.loads(measured["stdout"])
    timings = summary["timings"]
    stages = sum(timings.get(s, 0.0) for s in STAGES)
    return {"wall_s": round(measured["wall_s"], 2), "stages_s": round(stages, 2),
            "server_start_s": timings.get("prefect_server_start", 0.0),
            "overhead_s": round(measured["wall_s"] - stages - timings.get("prefect_server_start", 0.0), 2),
            "peak_rss_mb": round(measured["peak_rss_mb"]), "status": summary["status"], "runner": summary["runner"],
            "rows": summary["rows"], "timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--epochs-large", type=int, default=5, help="training epochs of the large-draw requests")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from pipelines import local_server
    from synth.simulated import simulated_admissions

    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="requests-bench-") as tmp:
        state = Path(tmp) / "state"
        env = {**os.environ, "SYNTHAUG_STATE_DIR": str(state), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
        for key in ("PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI", "SYNTHAUG_PREFECT_SERVER"):
            env.pop(key, None)
        try:
            small = ["--data", "builtin:breast_cancer", "--target", "diagnosis", "--epochs", "1"]
            results["overhead"] = [request(small, env), request(small, env)]
            print("request                      wall s  stages s  server start s  overhead s  peak RSS MB  runner")
            for i, r in enumerate(results["overhead"], 1):
                print(f"breast cancer, epochs 1, #{i}  {r['wall_s']:6.1f}  {r['stages_s']:8.1f}  "
                      f"{r['server_start_s']:14.1f}  {r['overhead_s']:10.1f}  {r['peak_rss_mb']:11d}  {r['runner']}"
                      f"  (track {r['timings']['track']:.1f} s of the stages)")
            if not args.skip_large:
                table = Path(tmp) / "admissions30k.csv"
                simulated_admissions(30_000, seed=0).to_csv(table, index=False)
                results["large"] = {}
                own = {**env, "SYNTHAUG_WARM_PROCESS": "off"}  # in the measured process tree, not the warm one
                for rows in (30_000, 1_000_000):
                    started = time.perf_counter()
                    results["large"][rows] = request(["--data", str(table), "--target", "outcome", "--rows", str(rows),
                                                      "--epochs", str(args.epochs_large)], own)
                    r = results["large"][rows]
                    print(f"admissions 30k, --rows {rows:>9,}  {r['wall_s']:6.1f}  {r['stages_s']:8.1f}  "
                          f"{r['server_start_s']:14.1f}  {r['overhead_s']:10.1f}  {r['peak_rss_mb']:11d}"
                          f"   ({time.perf_counter() - started:.0f} s, {r['status']})")
                ratio = results["large"][1_000_000]["peak_rss_mb"] / results["large"][30_000]["peak_rss_mb"]
                results["large_rss_ratio"] = ratio
                print(f"peak RSS, 1,000,000 rows / 30,000 rows: {ratio:.2f} (bar: <= 1.3)")
        finally:
            local_server.stop(state)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
