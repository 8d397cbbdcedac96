"""Where state lives, and what a request may ask for.

`Settings` comes from the environment (embedded defaults: everything under one
state folder in the current working directory, so two working directories never
share state). `AugmentRequest` is validated up front, before any work starts.
"""

from __future__ import annotations

import fcntl
import inspect
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


def request_field(default: Any = ..., help: str = "", stage: str = "load", cli: bool = True, key: str | None = None,
                  flag: str | None = None, **bounds: Any):
    """A request field declared once: default (a type or function: a fresh one each time), bounds and
    help; the `params.yaml` group (and `key`, if not the field's name) it lives under; whether the command
    line offers it, and `flag`: a two-valued field offered as an on/off option that sets that value."""
    extra = {"stage": stage, "cli": cli, "key": key, "flag": flag}
    if callable(default):
        return Field(default_factory=default, description=help, json_schema_extra=extra, **bounds)
    return Field(default, description=help, json_schema_extra=extra, **bounds)


class AugmentRequest(BaseModel):
    """One request for an augmented dataset. Each field is declared here only: the CLI's options, the
    Prefect flow's parameters and `params.yaml`'s groups derive from these declarations."""

    model_config = ConfigDict(extra="forbid")
    data: str = request_field(help="CSV or Parquet path, an image folder or MedMNIST .npz, or builtin:NAME")
    target: str | None = request_field(None, help="Outcome column (categorical); stratifies the split")
    rows: int = request_field(1000, stage="sample", ge=1, le=5_000_000, help="Synthetic rows to generate")
    conditions: dict[str, str] = request_field(dict, stage="sample",
                                               help="COLUMN=VALUE every synthetic row must satisfy (repeatable)")
    name: str | None = request_field(None, help="Dataset name in the registry (default: from --data)")
    seed: int = request_field(0, stage="split", ge=0, help="One seed for split, training and sampling")
    sample_seed: int | None = request_field(None, stage="sample", ge=0,
                                            help="Seed of the synthetic draw (default: --seed)")
    epochs: int = request_field(200, stage="train", ge=1, le=100_000, help="Training epochs")
    batch_size: int = request_field(500, stage="train", ge=10, help="Training batch size")
    engine: str = request_field(DEFAULT_ENGINE, stage="train",
                                help="Tables: tabgan (ours) or ctgan (the package); images: image_gan (the "
                                     "default for images) or translate")
    time_budget_s: float | None = request_field(None, stage="train", gt=0, allow_inf_nan=False,
                                                help="tabgan: stop training after this many seconds")
    patience: int | None = request_field(None, stage="train", ge=1,
                                         help="tabgan: stop after this many validations without gain")
    private: bool = request_field(False, help="The data is private: refuse to publish without --dp-epsilon")
    dp_epsilon: float | None = request_field(None, stage="train", gt=0, le=100, allow_inf_nan=False,
                                             help="tabgan: differentially private training within this epsilon "
                                                  "(delta 1e-5)")
    candidates: int = request_field(1, stage="train", ge=1, le=16,
                                    help="Train this many seeds in parallel on Dask; publish the best passing one")
    candidate_grid: list[dict[str, Any]] = request_field(list, stage="train", cli=False,
                                                         help="Training settings tried with each seed")
    holdout_fraction: float = request_field(0.3, stage="split", gt=0, lt=1, allow_inf_nan=False,
                                            help="Share held out before training; never reaches the generator")
    column_types: dict[str, str] = request_field(
        dict, help="COLUMN=KIND override (numeric, categorical, boolean, datetime, id) (repeatable)")
    sensitive: list[str] = request_field(list, help="Column scored for attribute inference (repeatable)")
    iterations: int | None = request_field(None, stage="train", ge=1, le=1_000_000,
                                           help="Images: training steps (default: the engine's own, image_gan "
                                                "1000 at batch 64, translate 2000 at batch 8)")
    translate: str | None = request_field(
        None, stage="train",
        help="Images, engine translate: SOURCE:TARGET classes, e.g. label=1:label=0 or site_a:site_b (two "
             "folders); default with two classes: the larger into the smaller")
    image_size: int | None = request_field(None, ge=8, le=512, help="Images: resize to this square size")
    skip_corrupt: bool = request_field(False, help="Images: skip unreadable files (named in the run) instead of "
                                                   "refusing")
    balance: bool = request_field(False, stage="sample", help="Images: bring every class up to the largest")
    curate: float | None = request_field(None, stage="sample", gt=0, lt=1, allow_inf_nan=False,
                                         help="Images: keep only images a real-data classifier assigns to their "
                                              "class with this confidence")
    publish: Literal["augmented", "synthetic_only"] = request_field(
        "augmented", stage="publish", key="mode", flag="synthetic_only",
        help="Publish only the synthetic rows, no real ones")
    gate: GateThresholds = request_field(GateThresholds, stage="evaluate", cli=False,
                                         help="The publish gate's thresholds (params.yaml explains each)")

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
        """Options an engine lacks are refused, by its capability tags."""
        from synth.generators import ENGINES, engines_for

        chosen = ENGINES[self.engine]
        engines = engines_for("tables")
        for option, tag in (("time_budget_s", "supports_early_stopping"), ("patience", "supports_early_stopping"),
                            ("dp_epsilon", "supports_dp")):
            if getattr(self, option) and not getattr(chosen, tag):
                able = ", ".join(sorted(name for name, cls in engines.items() if getattr(cls, tag)))
                raise ValueError(f"requests with {option} need engine {able}, not {self.engine!r}")
        if chosen.needs_sources and (self.private or self.publish == "synthetic_only"):
            raise ValueError(f"engine {self.engine!r} derives each image from a real training image; "
                             "it is refused for --private and --synthetic-only requests")
        if chosen.needs_sources and self.curate:
            raise ValueError(f"curate redraws images; engine {self.engine!r} translates each training image once, "
                             "so the two do not combine")
        if self.translate is not None:
            if not chosen.needs_sources:
                raise ValueError("translate (SOURCE:TARGET) needs engine translate")
            translation_pair(self.translate)
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

    @model_validator(mode="after")
    def _default_name(self):
        if self.name is None:
            stem = self.data.split(":", 1)[1] if self.data.startswith("builtin:") else Path(self.data).stem
            name = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]", "_", stem)).lstrip("._-")[:64]
            self.name = name.removesuffix(".lock").rstrip(".") or "dataset"
        return self


def translation_pair(text: str) -> tuple[str, str]:
    """`SOURCE:TARGET` as two class values: `label=1:label=0` gives ("1", "0"), `site_a:site_b` the names."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValueError(f"translate must look like SOURCE:TARGET (label=1:label=0, or two folder names), not {text!r}")
    return tuple(p.strip().removeprefix("label=") for p in parts)


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


def request_parameters() -> list[inspect.Parameter]:
    """The request's fields as keyword-only parameters with their types and defaults: the Prefect
    flow's signature (and so its deployments' parameter schema)."""
    empty = inspect.Parameter.empty
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=field.annotation,
                              default=empty if field.is_required() else field.get_default(call_default_factory=True))
            for name, field in AugmentRequest.model_fields.items()]


def params_layout() -> dict[str, tuple[str, str]]:
    """Per request field, where `params.yaml` holds it: (stage group, key)."""
    return {name: (field.json_schema_extra["stage"], field.json_schema_extra["key"] or name)
            for name, field in AugmentRequest.model_fields.items()}


def request_from_params(path: str | Path = "params.yaml") -> AugmentRequest:
    """The request that `params.yaml`'s stage groups describe (the `dvc repro` front)."""
    params = yaml.safe_load(Path(path).read_text())
    fields = {name: params[group][key] for name, (group, key) in params_layout().items()
              if key in (params.get(group) or {})}
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
