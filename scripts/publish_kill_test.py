"""Kill the publish step at random points and check the registry is never half-written.

Each trial starts a publish in a child process and SIGKILLs it after a random delay. After
every kill: the registry's git history is intact (`git fsck`), every tag's files come back
with `dvc get`, and the next publish completes without manual clean-up.

    python scripts/publish_kill_test.py [--trials 20] [--state DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = """
import sys
from pathlib import Path
from pipelines.publishing import publish_dataset
from pipelines.settings import Settings
publish_dataset(Path(sys.argv[1]), "killtest", Settings.from_env(), "kill test publish")
"""


def check_registry(url: str, scratch: Path) -> list[str]:
    subprocess.run(["git", "fsck", "--no-progress"], cwd=url, check=True, capture_output=True)
    tags = subprocess.run(["git", "tag"], cwd=url, capture_output=True, text=True, check=True).stdout.split()
    for tag in tags:
        out = scratch / f"{tag}.parquet"
        subprocess.run([sys.executable, "-m", "dvc", "get", url, "datasets/killtest/synthetic.parquet",
                        "--rev", tag, "-o", str(out), "--force"], check=True, capture_output=True, cwd=scratch)
        assert len(pd.read_parquet(out)) == 200, f"{tag} came back incomplete"
    return tags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--state", help="state folder (default: a temporary one)")
    parser.add_argument("--max-delay", type=float, default=4.0, help="kill within this many seconds")
    args = parser.parse_args()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with tempfile.TemporaryDirectory(prefix="synthaug-kill-") as tmp:
        tmp = Path(tmp)
        os.environ["SYNTHAUG_STATE_DIR"] = args.state or str(tmp / "state")
        package = tmp / "package"
        package.mkdir()
        pd.DataFrame({"x": np.arange(200.0)}).to_parquet(package / "synthetic.parquet")
        (package / "metrics.json").write_text(json.dumps({"trial": 0}))
        url = str(Path(os.environ["SYNTHAUG_STATE_DIR"]) / "registry.git")
        rng = random.Random(0)
        killed = completed = 0
        for trial in range(args.trials):
            (package / "metrics.json").write_text(json.dumps({"trial": trial}))
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(package)], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            delay = rng.uniform(0, args.max_delay)
            time.sleep(delay)
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                killed += 1
            else:
                completed += 1
            child.wait()
            tags = check_registry(url, tmp) if Path(url).exists() else []
            print(f"trial {trial:2d}: killed after {delay:.2f} s" if child.returncode < 0 else
                  f"trial {trial:2d}: finished before the kill ({delay:.2f} s)", f"- {len(tags)} intact versions")
        done = subprocess.run([sys.executable, "-c", CHILD, str(package)], capture_output=True, text=True)
        assert done.returncode == 0, f"publish after the kills failed: {done.stderr[-500:]}"
        tags = check_registry(url, tmp)
        print(f"{killed} killed, {completed} completed; afterwards a publish succeeded; "
              f"{len(tags)} versions, all intact: {' '.join(tags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
