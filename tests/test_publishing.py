"""The registry under faults and concurrency: never half-written, never overwritten."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from tests.conftest import ROOT
from tests.test_flow import dvc_get, registry_tags

PUBLISH = """
import sys
from pathlib import Path
from pipelines.publishing import publish_dataset
from pipelines.settings import Settings
print(publish_dataset(Path(sys.argv[1]), "shared_name", Settings.from_env(), "concurrent publish " + sys.argv[2]).rev)
"""


def test_four_concurrent_publishes_land_as_distinct_versions(state_dir, tmp_path):
    packages = []
    for i in range(4):
        package = tmp_path / f"package{i}"
        package.mkdir()
        pd.DataFrame({"request": np.full(50, i)}).to_parquet(package / "synthetic.parquet")
        packages.append(package)

    def publish(i):
        return subprocess.run([sys.executable, "-c", PUBLISH, str(packages[i]), str(i)], capture_output=True,
                              text=True, timeout=300)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(publish, range(4)))
    assert all(r.returncode == 0 for r in results), [r.stderr[-300:] for r in results]
    revs = sorted(r.stdout.strip() for r in results)
    assert revs == [f"shared_name-v{i}" for i in range(1, 5)]
    assert sorted(registry_tags(state_dir)) == revs
    seen = set()
    for rev in revs:  # each version holds the rows of the request that published it: nothing overwritten
        rows = dvc_get({"url": str(state_dir / "registry.git"), "path": "datasets/shared_name", "rev": rev},
                       "synthetic.parquet", tmp_path / f"{rev}.parquet")
        seen.add(int(rows["request"].iloc[0]))
    assert seen == {0, 1, 2, 3}


def test_publish_killed_at_random_points_never_leaves_a_half_written_version(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "publish_kill_test.py"), "--trials", "20",
                           "--max-delay", "3", "--state", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "afterwards a publish succeeded" in done.stdout
    assert "killed after" in done.stdout  # at least some trials were really interrupted


def test_dvc_get_works_when_the_state_folder_sits_inside_a_dvc_project(tmp_path, monkeypatch):
    """The demo's layout: `.synthaug/` inside this repository, which is itself a DVC project."""
    from pipelines.publishing import publish_dataset
    from pipelines.settings import Settings

    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=project, check=True)
    monkeypatch.setenv("SYNTHAUG_STATE_DIR", str(project / ".synthaug"))
    package = tmp_path / "package"
    package.mkdir()
    pd.DataFrame({"x": np.arange(30.0)}).to_parquet(package / "synthetic.parquet")
    version = publish_dataset(package, "inside", Settings.from_env(), "publish inside a DVC project")
    assert version.url.startswith("file://")
    for cwd in (project, tmp_path):  # from inside the project and from outside it
        out = cwd / "got.parquet"
        subprocess.run([sys.executable, "-m", "dvc", "get", version.url, f"{version.path}/synthetic.parquet",
                        "--rev", version.rev, "-o", str(out)], check=True, capture_output=True, cwd=cwd)
        assert len(pd.read_parquet(out)) == 30
