"""Where state lives, and what a request may ask for.

`Settings` comes from the environment (embedded defaults: everything under one
state folder in the current working directory, so two working directories never
share state). `AugmentRequest` is validated up front, before any work starts.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluation.gate import GateThresholds
from synth.errors import InputError

CANDIDATE_SETTINGS = {"epochs", "batch_size", "engine", "patience", "time_budget_s", "iterations"}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_STATE_DIR = ".synthaug"
DEFAULT_ENGINE = "tabgan"
DEFAULT_MAX_TRAIN_S = 3600.0  # an interactive request; SYNTHAUG_MAX_TRAIN_S=inf lifts it
DEFAULT_RETENTION_HOURS = 24.0  # a failed run's copy of the real data, kept for `prefect flow-run retry`


@contextmanager
def state_lock(state_dir: Path, name: str):
    """An exclusive lock on `state_dir`'s `name`, shared by every process on this machine (also
    by processes that have only the folder, such as the local Prefect server's supervisor)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Settings(BaseModel):
    """Locations of the state folder, tracking store and data registry."""

    state_dir: Path
    tracking_uri: str
    registry_url: str
    dvc_remote: str
    dask_address: str | None = None  # a running Dask scheduler for candidates; None: a LocalCluster per run
    dask_workers: int = 2  # LocalCluster worker processes (one thread each)
    max_memory_mb: float | None = None  # refuse requests estimated above this peak memory
    max_train_s: float | None = DEFAULT_MAX_TRAIN_S  # refuse requests whose training is estimated to take longer
    retention_hours: float = DEFAULT_RETENTION_HOURS  # then a failed run's real rows are deleted at the next start

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "mlartifacts"

    @property
    def tmp_dir(self) -> Path:
        """Scratch folders that may hold real rows: inside the state folder, never the system temp
        directory, so the retention sweep finds what a killed process left."""
        return self.state_dir / "tmp"

    @contextmanager
    def lock(self, name: str):
        """An exclusive lock on this state folder's `name` (publishing; the tracking store's first use)
        shared by every process on this machine."""
        with state_lock(self.state_dir, name):
            yield

    @contextmanager
    def scratch(self, purpose: str):
        """A scratch folder under `tmp_dir`, named by this process's id so that the next start's
        sweep can remove what a killed process left; removed on the way out."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{purpose}-{os.getpid()}-", dir=self.tmp_dir))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @classmethod
    def from_env(cls) -> "Settings":
        state = Path(os.environ.get("SYNTHAUG_STATE_DIR", DEFAULT_STATE_DIR)).resolve()
        return cls(
            state_dir=state,
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{state / 'mlflow.db'}",
            registry_url=os.environ.get("SYNTHAUG_REGISTRY_URL") or str(state / "registry.git"),
            dvc_remote=os.environ.get("SYNTHAUG_DVC_REMOTE") or str(state / "dvc-remote"),
            dask_address=os.environ.get("SYNTHAUG_DASK_ADDRESS") or None,
            dask_workers=int(os.environ.get("SYNTHAUG_DASK_WORKERS") or 2),
            max_memory_mb=float(os.environ.get("SYNTHAUG_MAX_MEMORY_MB") or machine_memory_mb() * 0.8),
            max_train_s=_limit(os.environ.get("SYNTHAUG_MAX_TRAIN_S"), DEFAULT_MAX_TRAIN_S),
            retention_hours=float(os.environ.get("SYNTHAUG_RETENTION_HOURS") or DEFAULT_RETENTION_HOURS),
        )


def _limit(text: str | None, default: float) -> float | None:
    """A budget from the environment: unset is the default, `inf` (or `none`) is no limit."""
    if not text:
        return default
    value = float("inf") if text.strip().lower() == "none" else float(text)
    return None if math.isinf(value) else value


def machine_memory_mb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


class GateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_exact_copy_pvalue: float = 0.0025
    max_exact_copies: int | None = None
    min_near_copy_pvalue: float = 0.0025
    min_dcr_pvalue: float = 0.0025
    max_membership_auc: float | None = 0.6
    min_membership_pvalue: float = 0.0025
    min_label_agreement: float | None = 0.8
    max_detection_auc: float | None = None
    min_utility_lift: float | None = None

    def thresholds(self) -> GateThresholds:
        return GateThresholds(**self.model_dump())


class AugmentRequest(BaseModel):
    """One request for an augmented dataset; the same fields as `params.yaml`'s stages."""

    model_config = ConfigDict(extra="forbid")
    data: str
    target: str | None = None
    rows: int = Field(1000, ge=1, le=5_000_000)
    conditions: dict[str, str] = Field(default_factory=dict)
    name: str | None = None
    seed: int = Field(0, ge=0)
    sample_seed: int | None = Field(None, ge=0)  # seed of the synthetic draw; default: seed
    epochs: int = Field(300, ge=1, le=100_000)
    batch_size: int = Field(500, ge=10)
    engine: str = DEFAULT_ENGINE
    time_budget_s: float | None = Field(None, gt=0, allow_inf_nan=False)  # tabgan: stop training after this many seconds
    patience: int | None = Field(None, ge=1)  # tabgan: stop after this many validations without gain
    private: bool = False  # the data is private: publish only from differentially private training
    dp_epsilon: float | None = Field(None, gt=0, le=100, allow_inf_nan=False)  # tabgan: train with DP-SGD within this budget
    candidates: int = Field(1, ge=1, le=16)  # seeds seed, seed+1, ... trained in parallel (Prefect flow, on Dask)
    candidate_grid: list[dict[str, Any]] = Field(default_factory=list)  # training settings tried with each seed
    holdout_fraction: float = Field(0.3, gt=0, lt=1, allow_inf_nan=False)
    column_types: dict[str, str] = Field(default_factory=dict)
    sensitive: list[str] = Field(default_factory=list)
    # images only
    iterations: int = Field(1000, ge=1, le=1_000_000)  # image GAN training steps (tables use epochs)
    image_size: int | None = Field(None, ge=8, le=512)  # resize every image to this square size
    skip_corrupt: bool = False  # skip unreadable image files (named in the run) instead of refusing
    balance: bool = False  # generate enough images to bring every class up to the largest
    curate: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False)  # keep images a real-data classifier assigns to their class
    publish: Literal["augmented", "synthetic_only"] = "augmented"
    gate: GateSettings = Field(default_factory=GateSettings)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value):
        if value is not None:
            check_dataset_name(value)
        return value

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value):
        from synth.generators import ENGINES

        if value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}; known: {', '.join(sorted(ENGINES))}")
        return value

    @model_validator(mode="after")
    def _engine_options(self):
        if self.engine != "tabgan" and (self.time_budget_s or self.patience or self.dp_epsilon):
            raise ValueError(f"time_budget_s, patience and dp_epsilon need engine tabgan, not {self.engine!r}")
        if self.dp_epsilon and self.is_images:
            raise ValueError("differentially private training is implemented for tables only")
        if self.private and not self.dp_epsilon:
            raise ValueError("the dataset is marked private: it is published only from differentially private "
                             "training; set dp_epsilon")
        return self

    @model_validator(mode="after")
    def _candidate_settings(self):
        for overrides in self.candidate_grid:
            unknown = set(overrides) - CANDIDATE_SETTINGS
            if unknown:
                raise ValueError(f"candidate_grid sets {', '.join(sorted(unknown))}; it may set only "
                                 f"{', '.join(sorted(CANDIDATE_SETTINGS))}")
            try:
                AugmentRequest.model_validate({**self.model_dump(exclude={"candidates", "candidate_grid"}), **overrides})
            except ValidationError as exc:
                error = exc.errors()[0]
                raise ValueError(f"candidate_grid entry {overrides}: {error['msg'].removeprefix('Value error, ')}") from None
        return self

    def candidate_requests(self) -> list["AugmentRequest"]:
        """One request per candidate generator: each setting of `candidate_grid` (or the request's own)
        with `candidates` seeds. A single candidate is the request itself."""
        if self.candidates == 1 and not self.candidate_grid:
            return [self]
        base = self.model_dump(exclude={"candidates", "candidate_grid"})
        return [AugmentRequest.model_validate({**base, **overrides, "seed": self.seed + offset})
                for overrides in self.candidate_grid or [{}] for offset in range(self.candidates)]

    @property
    def draw_seed(self) -> int:
        return self.seed if self.sample_seed is None else self.sample_seed

    @property
    def is_images(self) -> bool:
        from synth.images import is_image_source

        return is_image_source(self.data)

    @property
    def generator_engine(self) -> str:
        """The engine that actually trains: the image GAN for image sets, `engine` for tables."""
        from synth.generators.image_gan import ConditionalImageGAN

        return ConditionalImageGAN.engine if self.is_images else self.engine

    @model_validator(mode="after")
    def _default_name(self):
        if self.name is None:
            stem = self.data.split(":", 1)[1] if self.data.startswith("builtin:") else Path(self.data).stem
            name = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]", "_", stem)).lstrip("._-")[:64]
            self.name = name.removesuffix(".lock").rstrip(".") or "dataset"
        return self


def check_dataset_name(name: str) -> None:
    """A dataset name becomes a folder, an MLflow model and the git tag `<name>-vN`: the whole string
    must match (a trailing newline included) and git must accept the tag (no '..', no '.lock' end)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    valid = subprocess.run(["git", "check-ref-format", f"refs/tags/{name}-v1"], capture_output=True).returncode == 0
    if not valid or name.endswith((".", ".lock")):
        raise ValueError(f"{name!r} is not a valid git tag name (no '..', no trailing '.' or '.lock')")


def build_request(**fields) -> AugmentRequest:
    """Validate request fields; a bad field is one clear line, not a pydantic dump."""
    try:
        return AugmentRequest(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "request"
        message = error["msg"].removeprefix("Value error, ")
        raise InputError(f"invalid {where}: {message}") from None


def request_from_params(path: str | Path = "params.yaml") -> AugmentRequest:
    """The request that `params.yaml`'s stage groups describe (the `dvc repro` front)."""
    params = yaml.safe_load(Path(path).read_text())
    fields = {**params["load"], **params["split"], **params["train"], **params["sample"],
              "gate": params["evaluate"]["gate"], "publish": params["publish"]["mode"]}
    return build_request(**fields)


def scheduled_datasets(path: str | Path) -> dict[str, tuple[str, AugmentRequest]]:
    """`datasets.yaml`: per dataset name, a cron schedule and the request a scheduled run makes.

    Relative data paths are taken from the file's folder, so `synthaug serve` works from anywhere."""
    path = Path(path)
    try:
        entries = (yaml.safe_load(path.read_text()) or {}).get("datasets") or {}
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise InputError(f"cannot read the datasets file {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(entries, dict) or not entries:
        raise InputError(f"{path} lists no datasets (expected a 'datasets:' mapping of name to cron and request)")
    out = {}
    for name, entry in entries.items():
        fields = dict(entry or {})
        cron = fields.pop("cron", None)
        if not isinstance(cron, str) or len(cron.split()) not in (5, 6):
            raise InputError(f"dataset {name!r} in {path}: 'cron' must be a cron expression like '0 3 * * *'")
        data = str(fields.get("data", ""))
        if data and not data.startswith("builtin:") and not Path(data).is_absolute():
            fields["data"] = str((path.parent / data).resolve())
        try:
            out[name] = (cron, build_request(**{**fields, "name": name}))
        except InputError as exc:
            raise InputError(f"dataset {name!r} in {path}: {exc}") from None
    return out


def parse_conditions(items: list[str]) -> dict[str, str]:
    """`COL=VALUE` pairs from the command line."""
    out = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise InputError(f"condition {item!r} must look like COLUMN=VALUE")
        out[column] = value
    return out
