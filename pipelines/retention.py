"""What a run keeps on disk, and for how long (the README's "Private data: what stays on disk").

A run folder holds copies of the user's real data (the loaded table, the split, the package with
real training rows). A finished run (published, rejected or unchanged) deletes them at once and
keeps only what is derived: the generator, synthetic rows, scores, figures and report. A run that
failed keeps them for `prefect flow-run retry` until `Settings.retention_hours` have passed; the
next request's sweep then deletes them, removes scratch folders whose process is gone, and marks
flow runs whose process was killed as Crashed (the server would show them Running forever).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from pipelines.settings import Settings
from pipelines.workspace import Workspace

# the Workspace files that copy real rows or images; package/ holds augmented.* (the registry has the
# published copy)
REAL_DATA = tuple(getattr(Workspace(Path()), name).name
                  for name in ("table", "train", "holdout", "train_images", "holdout_images"))
REAL_DATA_FOLDERS = (Workspace(Path()).package.name,)
OWNER = "owner.json"  # the process running the flow, while it runs


def discard_real_data(run_root: Path) -> None:
    """Delete every copy of real rows under a run folder (candidates and fresh draws included)."""
    if not run_root.is_dir():
        return
    for path in sorted(run_root.rglob("*"), reverse=True):
        if path.name in REAL_DATA and path.is_file():
            path.unlink()
        elif path.name in REAL_DATA_FOLDERS and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def claim(run_root: Path, flow_run_id: str | None) -> None:
    """Mark the run folder as this process's, so a later sweep can tell a killed run from a live one."""
    run_root.mkdir(parents=True, exist_ok=True)
    (run_root / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                              "flow_run_id": flow_run_id}))


def finish(run_root: Path) -> None:
    """A run that ended (published, rejected, unchanged): no real rows stay behind."""
    discard_real_data(run_root)
    (run_root / OWNER).unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process of this host with this id exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(settings: Settings, now: float | None = None) -> list[str]:
    """Clean up after runs that did not end well; returns the ids of flow runs found killed.

    - scratch folders (`<purpose>-<pid>-*` under `tmp_dir`) of processes that are gone: removed;
    - run folders owned by a process of this host that is gone: their flow run is returned (to be
      marked Crashed) and the claim dropped;
    - run folders untouched for `retention_hours` and not owned by a live process: real rows deleted.
    """
    now = time.time() if now is None else now
    if settings.tmp_dir.is_dir():
        for folder in settings.tmp_dir.iterdir():
            parts = folder.name.split("-")
            pid = next((int(p) for p in parts[1:] if p.isdigit()), None)
            if pid is not None and not process_alive(pid):
                shutil.rmtree(folder, ignore_errors=True)
    killed = []
    if not settings.runs_dir.is_dir():
        return killed
    for run_root in settings.runs_dir.iterdir():
        owner_file = run_root / OWNER
        if owner_file.is_file():
            try:
                owner = json.loads(owner_file.read_text())
            except (OSError, ValueError):
                owner = {}
            if owner.get("host") == socket.gethostname() and not process_alive(int(owner.get("pid", 0)) or 0):
                if owner.get("flow_run_id"):
                    killed.append(owner["flow_run_id"])
                owner_file.unlink(missing_ok=True)
            else:
                continue  # a live run, here or on another host sharing the folder
        if now - run_root.stat().st_mtime > settings.retention_hours * 3600:
            discard_real_data(run_root)
    return killed
