"""Publishing to a DVC data registry: a git repository plus a DVC remote.

Every publish works in a fresh clone and changes the registry only with its
final `git push` of the commit and tag, after `dvc push` has stored the data:
a crash earlier leaves the registry at its previous version. A lock file
serialises publishers on this machine; a rejected push (another publisher
got there first) is retried from a fresh clone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.settings import Settings
from synth import progress
from synth.errors import InputError

GIT_IDENTITY = ["-c", "user.name=synthaug", "-c", "user.email=synthaug@localhost"]
BRANCH = "main"


@dataclass
class PublishedVersion:
    url: str
    path: str
    rev: str
    commit: str

    def to_dict(self) -> dict:
        return asdict(self)


def _run(args: list[str], cwd: Path | None = None) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


def _git(*args: str, cwd: Path | None = None) -> str:
    return _run(["git", *GIT_IDENTITY, *args], cwd=cwd)


def _dvc(*args: str, cwd: Path) -> str:
    return _run([sys.executable, "-m", "dvc", *args], cwd=cwd)


def _is_local(url: str) -> bool:
    return "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url)


def check_registry(settings: Settings) -> None:
    """Refuse, before any training, a local registry path that is neither a git repository nor free
    for one (a plain file, a folder of other things). Remote URLs are tried only when publishing."""
    url = settings.registry_url
    if not _is_local(url):
        return
    target = Path(url)
    if target.is_file():
        raise InputError(f"SYNTHAUG_REGISTRY_URL {url} is a file, not a git repository")
    if target.is_dir() and not (target / "HEAD").exists() and any(target.iterdir()):
        raise InputError(f"SYNTHAUG_REGISTRY_URL {url} is a folder that is not a bare git repository; "
                         "point it at a registry, or at a path that does not exist yet")


def ensure_registry(settings: Settings) -> None:
    """Create the local bare registry with DVC initialised and its remote configured, once.

    Built in a staging folder and renamed into place when complete, so a crash mid-way never
    leaves a registry without its first commit (the kill test found exactly that); a failure
    removes the staging folder.
    """
    url = settings.registry_url
    if not _is_local(url) or (Path(url) / "HEAD").exists():
        return
    check_registry(settings)
    target = Path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f"{target.name}.init-*"):  # from a crashed initialisation
        shutil.rmtree(leftover, ignore_errors=True)
    staging = target.with_name(f"{target.name}.init-{os.getpid()}")
    try:
        _git("init", "--bare", "--initial-branch", BRANCH, str(staging))
        with settings.scratch("registry-init") as tmp:
            work = tmp / "registry"
            _git("clone", "--quiet", str(staging), str(work))
            _git("checkout", "--quiet", "-B", BRANCH, cwd=work)
            _dvc("init", "--quiet", cwd=work)
            _dvc("config", "core.analytics", "false", cwd=work)
            _dvc("remote", "add", "--default", "storage", settings.dvc_remote, cwd=work)
            (work / "README.md").write_text(
                "# synthaug data registry\n\nEach dataset lives under `datasets/<name>/`; each published version "
                "is a tag `<name>-vN`.\nGet one with `dvc get <this repo> datasets/<name>/<file> --rev <tag>`.\n")
            _git("add", "-A", cwd=work)
            _git("commit", "--quiet", "-m", "Initialise the data registry", cwd=work)
            _git("push", "--quiet", "origin", BRANCH, cwd=work)
        if target.exists():  # an empty folder made by hand: nothing in it to lose
            target.rmdir()
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def published_tags(settings: Settings, name: str) -> list[str]:
    if _is_local(settings.registry_url) and not (Path(settings.registry_url) / "HEAD").exists():
        return []
    out = _git("ls-remote", "--tags", settings.registry_url)
    tags = [line.split("refs/tags/")[1] for line in out.splitlines() if "refs/tags/" in line]
    return sorted((t for t in tags if re.fullmatch(rf"{re.escape(name)}-v\d+", t)),
                  key=lambda t: int(t.rsplit("-v", 1)[1]))


def publish_dataset(package_dir: Path, name: str, settings: Settings, message: str,
                    attempts: int = 3) -> PublishedVersion:
    """Copy `package_dir` to `datasets/<name>/` in the registry as a new tagged version."""
    with settings.lock("registry"):
        ensure_registry(settings)
        for attempt in range(attempts):
            try:
                return _publish_once(package_dir, name, settings, message)
            except RuntimeError as exc:
                if "rejected" not in str(exc) and "already exists" not in str(exc) or attempt == attempts - 1:
                    raise
    raise AssertionError("unreachable")


def _publish_once(package_dir: Path, name: str, settings: Settings, message: str) -> PublishedVersion:
    with settings.scratch("publish") as tmp:  # holds real rows (augmented): never the system temp folder
        work = tmp / "registry"
        progress.update("publish", 0, 3, step="clone")
        _git("clone", "--quiet", "--branch", BRANCH, settings.registry_url, str(work))
        target = Path("datasets") / name
        if (work / target).exists():
            shutil.rmtree(work / target)
        shutil.copytree(package_dir, work / target)
        progress.update("publish", 1, 3, step="dvc add")
        _dvc("add", "--quiet", str(target), cwd=work)
        _git("add", "-A", cwd=work)
        tags = published_tags(settings, name)
        version = int(tags[-1].rsplit("-v", 1)[1]) + 1 if tags else 1
        rev = f"{name}-v{version}"
        _git("commit", "--quiet", "--allow-empty", "-m", message, cwd=work)
        _git("tag", "-a", rev, "-m", message, cwd=work)
        progress.update("publish", 2, 3, step="push")
        _dvc("push", "--quiet", cwd=work)
        _git("push", "--quiet", "--atomic", "origin", BRANCH, rev, cwd=work)
        commit = _git("rev-parse", "HEAD", cwd=work)
        progress.update("publish", 3, 3, step=rev)
    return PublishedVersion(url=registry_uri(settings), path=str(target), rev=rev, commit=commit)


def registry_uri(settings: Settings) -> str:
    """The URL consumers pass to `dvc get`. A local registry as a file:// URI: given a plain path
    inside another DVC project (the default state folder inside this repository, say), DVC walks
    up to that project and reads its cache instead of cloning the registry."""
    url = settings.registry_url
    return Path(url).resolve().as_uri() if _is_local(url) else url
