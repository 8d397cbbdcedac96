"""The interface every kind of data implements: what a run does differs by kind (tables, images), the
order it does it in does not (`pipelines.stages`, `pipelines.run`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from synth.resources import ResourceEstimate

if TYPE_CHECKING:
    import hashlib

    from pipelines.settings import AugmentRequest
    from pipelines.workspace import Workspace


class Kind(ABC):
    """One kind of data from load to package. Each stage reads its inputs from and writes its outputs
    to `Workspace` paths and returns a path, never the data, so persisted task results hold no rows."""

    name: ClassVar[str]
    file_format: ClassVar[str]  # the published files' extension

    @staticmethod
    @abstractmethod
    def accepts(data: str) -> bool:
        """Whether a request's `data` is of this kind."""

    @abstractmethod
    def engine(self, request: AugmentRequest) -> str:
        """The engine that trains on this request."""

    @abstractmethod
    def training_settings(self, request: AugmentRequest) -> dict[str, int]:
        """The training settings the engine uses, the engine's own defaults filled in (a run logs
        what trained, not `None`)."""

    @abstractmethod
    def load(self, request: AugmentRequest, ws: Workspace) -> Path: ...

    @abstractmethod
    def add_to_fingerprint(self, ws: Workspace, digest: hashlib._Hash) -> None:
        """Feed the loaded data's values (not its files: a zip written twice differs) to `digest`."""

    @abstractmethod
    def split(self, request: AugmentRequest, ws: Workspace) -> Path:
        """Split, then check the request against the training part: every bad condition is refused here,
        before any training."""

    @abstractmethod
    def estimate(self, request: AugmentRequest, ws: Workspace) -> ResourceEstimate:
        """One training's peak memory and seconds, from the split data."""

    @abstractmethod
    def train(self, request: AugmentRequest, ws: Workspace) -> Path: ...

    @abstractmethod
    def sample(self, request: AugmentRequest, ws: Workspace) -> Path: ...

    @abstractmethod
    def evaluate(self, request: AugmentRequest, ws: Workspace) -> Path:
        """Scores, gate decision, figures and the report; the gate decides, this stage only records."""

    @abstractmethod
    def package(self, request: AugmentRequest, ws: Workspace) -> Path:
        """The files a consumer gets, with the scores and the report as the dataset's datasheet."""

    @abstractmethod
    def fidelity(self, metrics: dict[str, float]) -> float:
        """The fidelity that ranks candidates the gate passed (higher is better)."""

    @abstractmethod
    def description(self, ws: Workspace) -> Path:
        """The file that describes the data (schema, classes), logged beside the run."""

    @abstractmethod
    def mlflow_dataset(self, request: AugmentRequest, ws: Workspace, source):
        """The training split as an MLflow dataset: digest, schema and profile, not the rows."""
