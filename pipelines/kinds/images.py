"""Images: a MedMNIST-layout `.npz`, a folder of class folders, or a built-in set; published as `.npz`
(`images` uint8 (N, H, W), `labels`, `class_names`, and in `augmented.npz` an `is_synthetic` flag),
readable with `numpy.load` alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.assessment import assess_images
from evaluation.images import curate
from pipelines.kinds.base import Kind
from pipelines.settings import AugmentRequest, translation_pair
from pipelines.workspace import Workspace
from synth.errors import InputError
from synth.generators import ImageGenerator, engine_class, engines_for
from synth.images import ImageSet, cross_split_duplicates, is_image_source, label_index, load_image_splits
from synth.resources import ResourceEstimate

ENGINE = "image_gan"  # the engine image requests train unless they name another image engine


class Images(Kind):
    name = "images"
    file_format = "npz"

    @staticmethod
    def accepts(data: str) -> bool:
        return is_image_source(data)

    def engine(self, request: AugmentRequest) -> str:
        return request.engine if request.engine in engines_for(self.name) else ENGINE

    def _model(self, request: AugmentRequest) -> ImageGenerator:
        """The request's engine with the request's settings; translation also gets its two classes."""
        options = {}
        if request.translate:
            options["source"], options["target"] = translation_pair(request.translate)
        return engine_class(self.engine(request), self.name)(iterations=self.iterations(request),
                                                              seed=request.seed, **options)

    def iterations(self, request: AugmentRequest) -> int:
        """The request's training steps, or its engine's default (engines differ by a factor of three)."""
        if request.iterations is not None:
            return request.iterations
        return engine_class(self.engine(request), self.name).default_params()["iterations"]

    def training_settings(self, request: AugmentRequest) -> dict[str, int]:
        return {"iterations": self.iterations(request)}

    def load(self, request: AugmentRequest, ws: Workspace) -> Path:
        """Read and split at once: MedMNIST files keep their official split, else seeded and stratified."""
        train, holdout = load_image_splits(request.data, size=request.image_size, skip_corrupt=request.skip_corrupt,
                                           holdout_fraction=request.holdout_fraction, seed=request.seed)
        train.save_npz(ws.train_images)
        holdout.save_npz(ws.holdout_images)
        ws.info.write_text(json.dumps({"kind": "images", "class_names": train.class_names,
                                       "size": int(train.images.shape[-1]), "skipped_files": train.skipped},
                                      indent=1))
        return ws.train_images

    def add_to_fingerprint(self, ws: Workspace, digest) -> None:
        for path in (ws.train_images, ws.holdout_images):
            images = ImageSet.load_npz(path)
            for part in (images.images, images.labels, np.array(images.class_names)):
                digest.update(np.ascontiguousarray(part).tobytes())

    def split(self, request: AugmentRequest, ws: Workspace) -> Path:
        """The split happened at load; check the request against it and report train/holdout
        duplicates, which spoil every held-out comparison."""
        train, holdout = ImageSet.load_npz(ws.train_images), ImageSet.load_npz(ws.holdout_images)
        if request.dp_epsilon:
            raise InputError("differentially private training is implemented for tables only, not image sets")
        unknown = set(request.conditions) - {"label"}
        if unknown:
            raise InputError(f"image conditions take only 'label', not {', '.join(sorted(unknown))}")
        if "label" in request.conditions:
            label_index(train.class_names, request.conditions["label"])
        if request.balance and request.conditions:
            raise InputError("balance brings every class up to the largest; it takes no condition")
        counts = np.bincount(train.labels, minlength=len(train.class_names)).tolist()
        model = self._model(request)
        if model.needs_sources:  # which classes it translates, and that the draw asks for the target
            _, target = model.domains(train.class_names, counts)
            if "label" in request.conditions and label_index(train.class_names, request.conditions["label"]) != target:
                raise InputError(f"this translation makes {train.class_names[target]!r} images only; condition on "
                                 "that class or name another pair in translate")
        info = ws.read_info()
        duplicates = cross_split_duplicates(train, holdout)
        info["duplicates"] = {k: v for k, v in duplicates.items() if k != "pairs"}
        info["class_counts"] = counts
        ws.info.write_text(json.dumps(info, indent=1))
        return ws.train_images

    def estimate(self, request: AugmentRequest, ws: Workspace) -> ResourceEstimate:
        train_set = ImageSet.load_npz(ws.train_images)
        return engine_class(self.engine(request), self.name).estimate(len(train_set), int(train_set.images.shape[-1]),
                                                                      self.iterations(request))

    def train(self, request: AugmentRequest, ws: Workspace) -> Path:
        model = self._model(request)
        model.fit(ImageSet.load_npz(ws.train_images))
        model.save(ws.generator)
        pd.DataFrame(model.loss_history_).to_csv(ws.losses, index=False)
        return ws.generator

    def sample(self, request: AugmentRequest, ws: Workspace) -> Path:
        """Exactly the requested images; with `curate`, only those a real-data classifier assigns to their class."""
        model = ImageGenerator.load(ws.generator)
        train_set = ImageSet.load_npz(ws.train_images)
        counts = np.bincount(train_set.labels, minlength=len(train_set.class_names))
        sources = {"sources": train_set} if model.needs_sources else {}  # translation: from real images
        if request.balance:
            def draw(seed: int) -> ImageSet:
                return model.sample_balanced(dict(enumerate(counts.tolist())), seed=seed, **sources)
        else:
            def draw(seed: int) -> ImageSet:
                return model.sample(request.rows, request.conditions, seed=seed, **sources)
        if request.curate:
            images, curation = curate(draw, train_set, request.curate, request.draw_seed, seed=request.seed)
            ws.curation.write_text(json.dumps(curation, indent=1))
        else:
            images = draw(request.draw_seed)
        if model.needs_sources:  # which training image each came from, and their round trip: for the scores
            ws.translation.write_text(json.dumps({
                "source_indices": model.source_indices_.tolist(),
                "cycle_error": model.cycle_error(train_set.images[model.source_indices_])}))
        images.save_npz(ws.synthetic_images)
        return ws.synthetic_images

    def evaluate(self, request: AugmentRequest, ws: Workspace) -> Path:
        train_set, holdout, synthetic = (ImageSet.load_npz(p) for p in (ws.train_images, ws.holdout_images,
                                                                          ws.synthetic_images))
        extra = {f"data_train_holdout_{key}": value for key, value in ws.read_info().get("duplicates", {}).items()}
        if ws.curation.is_file():
            extra["curation_dropped"] = json.loads(ws.curation.read_text())["dropped"]
        translation = json.loads(ws.translation.read_text()) if ws.translation.is_file() else None
        if translation:
            extra["fidelity_translation_cycle_error"] = translation["cycle_error"]
        assess_images(train_set, holdout, synthetic, request.gate, ws.evaluation, request.name, seed=request.seed,
                      losses=pd.read_csv(ws.losses), extra_metrics=extra, show_real=shows_real_images(request),
                      source_indices=np.array(translation["source_indices"]) if translation else None)
        return ws.metrics

    def package(self, request: AugmentRequest, ws: Workspace) -> Path:
        ws.package.mkdir(parents=True, exist_ok=True)
        synthetic = ImageSet.load_npz(ws.synthetic_images)
        synthetic.save_npz(ws.package / "synthetic.npz")
        if request.publish == "augmented":
            real = ImageSet.load_npz(ws.train_images)
            np.savez_compressed(ws.package / "augmented.npz", images=np.concatenate([real.images, synthetic.images]),
                                labels=np.concatenate([real.labels, synthetic.labels]),
                                is_synthetic=np.r_[np.zeros(len(real), bool), np.ones(len(synthetic), bool)],
                                class_names=np.array(real.class_names))
        (ws.package / "metrics.json").write_text(ws.metrics.read_text())
        (ws.package / "datasheet.html").write_text(ws.report.read_text())
        return ws.package

    def fidelity(self, metrics: dict[str, float]) -> float:
        return -metrics.get("fidelity_fid", float("inf"))  # the lowest Fréchet distance

    def description(self, ws: Workspace) -> Path:
        return ws.info

    def mlflow_dataset(self, request: AugmentRequest, ws: Workspace, source):
        import mlflow

        images = ImageSet.load_npz(ws.train_images)
        return mlflow.data.from_numpy(images.images, targets=images.labels, source=source, name=request.name)


def shows_real_images(request: AugmentRequest) -> bool:
    """Figures may show real training images only where real images are published anyway: never for
    `synthetic_only` or `private` requests (their report, datasheet and MLflow run hold no real pixel)."""
    return request.publish == "augmented" and not request.private
