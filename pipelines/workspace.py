"""Where a request's files live: one folder per run."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas: not imported by the command line's first steps
    from synth.schema import Schema


@dataclass(frozen=True)
class Workspace:
    """Paths of every stage's outputs under one folder, a subfolder per stage group: `data` (loaded and
    split: real rows), `model` (trained), `draw` (sampled), `evaluation` (scored), `package` (published
    files). `dvc.yaml` declares these folders as its stages' outputs, for tables and images alike."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    data = property(lambda self: self.root / "data")
    table = property(lambda self: self.data / "table.parquet")
    schema = property(lambda self: self.data / "schema.json")
    train = property(lambda self: self.data / "train.parquet")
    holdout = property(lambda self: self.data / "holdout.parquet")
    info = property(lambda self: self.data / "images.json")  # image sets: classes, sizes, duplicates
    train_images = property(lambda self: self.data / "train.npz")
    holdout_images = property(lambda self: self.data / "holdout.npz")

    fingerprint = property(lambda self: self.root / "fingerprint.txt")  # the loaded data and the request, hashed

    model = property(lambda self: self.root / "model")
    generator = property(lambda self: self.model / "generator")
    losses = property(lambda self: self.model / "losses.csv")
    privacy_budget = property(lambda self: self.model / "privacy_budget.json")  # DP runs: epsilon spent
    twin_generator = property(lambda self: self.model / "generator_nonprivate")  # DP runs: the same, not private

    draw = property(lambda self: self.root / "draw")
    synthetic = property(lambda self: self.draw / "synthetic.parquet")
    sampling = property(lambda self: self.draw / "sampling.json")  # acceptance rate of conditioned sampling
    twin_synthetic = property(lambda self: self.draw / "synthetic_nonprivate.parquet")
    synthetic_images = property(lambda self: self.draw / "synthetic.npz")
    curation = property(lambda self: self.draw / "curation.json")  # images: what curation dropped
    translation = property(lambda self: self.draw / "translation.json")  # translated images: their sources

    evaluation = property(lambda self: self.root / "evaluation")
    metrics = property(lambda self: self.evaluation / "metrics.json")
    figures = property(lambda self: self.evaluation / "figures")
    report = property(lambda self: self.evaluation / "report.html")
    package = property(lambda self: self.root / "package")
    candidates = property(lambda self: self.root / "candidates")  # one folder per candidate generator
    selection = property(lambda self: self.candidates / "selection.json")  # `dvc repro`: the one published

    def candidate(self, index: int) -> "Workspace":
        """A candidate generator's folder holding hard links to this run's loaded and split data: every
        candidate is trained on the same rows and scored on the same holdout."""
        return self._linked(self.candidates / str(index), ("data",))

    def fresh_draw(self) -> "Workspace":
        """A folder for a second draw from this workspace's trained generator(s), scored on its own:
        links to the split data and the training outputs, nothing sampled or scored yet."""
        return self._linked(self.root.with_name(f"{self.root.name}-fresh-draw"), ("data", "model"))

    def _linked(self, root: Path, folders: tuple[str, ...]) -> "Workspace":
        child = Workspace(root)
        child.root.mkdir(parents=True, exist_ok=True)
        for name in folders:
            source, link = getattr(self, name), getattr(child, name)
            if source.is_dir() and not link.exists():
                shutil.copytree(source, link, copy_function=os.link)
        return child

    def read_info(self) -> dict:
        return json.loads(self.info.read_text())

    def read_schema(self) -> Schema:
        from synth.schema import Schema

        return Schema.from_dict(json.loads(self.schema.read_text()))
