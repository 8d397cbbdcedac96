"""Where a request's files live (one folder per run) and how its scores are written."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from evaluation.report import render_report
from synth.schema import Schema


SPLIT_OUTPUTS = ("table", "schema", "train", "holdout", "info", "train_images", "holdout_images")
TRAIN_OUTPUTS = ("generator", "losses", "privacy_budget", "twin_generator")


@dataclass(frozen=True)
class Workspace:
    """Paths of every stage's outputs under one folder."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    table = property(lambda self: self.root / "table.parquet")
    schema = property(lambda self: self.root / "schema.json")
    train = property(lambda self: self.root / "train.parquet")
    holdout = property(lambda self: self.root / "holdout.parquet")
    generator = property(lambda self: self.root / "generator")
    losses = property(lambda self: self.root / "losses.csv")
    synthetic = property(lambda self: self.root / "synthetic.parquet")
    sampling = property(lambda self: self.root / "sampling.json")  # acceptance rate of conditioned sampling
    privacy_budget = property(lambda self: self.root / "privacy_budget.json")  # DP runs: epsilon spent
    twin_generator = property(lambda self: self.root / "generator_nonprivate")  # DP runs: the same, not private
    twin_synthetic = property(lambda self: self.root / "synthetic_nonprivate.parquet")
    evaluation = property(lambda self: self.root / "evaluation")
    metrics = property(lambda self: self.root / "evaluation" / "metrics.json")
    figures = property(lambda self: self.root / "evaluation" / "figures")
    report = property(lambda self: self.root / "evaluation" / "report.html")
    package = property(lambda self: self.root / "package")
    info = property(lambda self: self.root / "images.json")  # image sets: classes, duplicates, curation
    train_images = property(lambda self: self.root / "train.npz")
    holdout_images = property(lambda self: self.root / "holdout.npz")
    synthetic_images = property(lambda self: self.root / "synthetic.npz")

    def candidate(self, index: int) -> "Workspace":
        """A candidate generator's folder holding hard links to this run's loaded and split data: every
        candidate is trained on the same rows and scored on the same holdout."""
        return self._linked(self.root / "candidates" / str(index), SPLIT_OUTPUTS)

    def fresh_draw(self) -> "Workspace":
        """A folder for a second draw from this workspace's trained generator(s), scored on its own:
        links to the split data and the training outputs, nothing sampled or scored yet."""
        return self._linked(self.root.with_name(f"{self.root.name}-fresh-draw"), SPLIT_OUTPUTS + TRAIN_OUTPUTS)

    def _linked(self, root: Path, names: tuple[str, ...]) -> "Workspace":
        child = Workspace(root)
        child.root.mkdir(parents=True, exist_ok=True)
        for name in names:
            source, link = getattr(self, name), getattr(child, name)
            if source.is_dir() and not link.exists():
                shutil.copytree(source, link, copy_function=os.link)
            elif source.is_file() and not link.exists():
                os.link(source, link)
        return child

    def read_info(self) -> dict:
        return json.loads(self.info.read_text())

    def read_schema(self) -> Schema:
        return Schema.from_dict(json.loads(self.schema.read_text()))


def write_scores(scores: dict, out_dir: Path, name: str) -> dict:
    """metrics.json and the HTML report (figures already in `out_dir/figures`)."""
    (out_dir / "metrics.json").write_text(json.dumps(scores, indent=1))
    (out_dir / "report.html").write_text(render_report(name, scores, out_dir / "figures"))
    return scores
