"""The image variants of the stages in `pipelines.stages` (which dispatch here for image requests).

Published format: one `.npz` per file (`images` uint8 (N, H, W), `labels`, `class_names`, and
in `augmented.npz` an `is_synthetic` flag), readable with `numpy.load` alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import plots
from evaluation.gate import apply_gate
from evaluation.images import evaluate_images, predict_proba, train_classifier
from pipelines.workspace import write_scores
from synth.errors import InputError
from synth.generators.image_gan import ConditionalImageGAN
from synth.images import ImageSet, cross_split_duplicates, label_index, load_image_splits

MAX_CURATION_ROUNDS = 20


def load(request, ws) -> Path:
    train, holdout = load_image_splits(request.data, size=request.image_size, skip_corrupt=request.skip_corrupt,
                                       holdout_fraction=request.holdout_fraction, seed=request.seed)
    ws.root.mkdir(parents=True, exist_ok=True)
    train.save_npz(ws.train_images)
    holdout.save_npz(ws.holdout_images)
    ws.info.write_text(json.dumps({"kind": "images", "class_names": train.class_names,
                                   "size": int(train.images.shape[-1]), "skipped_files": train.skipped}, indent=1))
    return ws.train_images


def split(request, ws) -> Path:
    """The split happened at load (MedMNIST's official one, else seeded and stratified); check the
    request against it and report train/holdout duplicates, which spoil every held-out comparison."""
    train, holdout = ImageSet.load_npz(ws.train_images), ImageSet.load_npz(ws.holdout_images)
    unknown = set(request.conditions) - {"label"}
    if unknown:
        raise InputError(f"image conditions take only 'label', not {', '.join(sorted(unknown))}")
    if "label" in request.conditions:
        label_index(train.class_names, request.conditions["label"])
    if request.balance and request.conditions:
        raise InputError("balance brings every class up to the largest; it takes no condition")
    info = ws.read_info()
    duplicates = cross_split_duplicates(train, holdout)
    info["duplicates"] = {k: v for k, v in duplicates.items() if k != "pairs"}
    info["class_counts"] = np.bincount(train.labels, minlength=len(train.class_names)).tolist()
    ws.info.write_text(json.dumps(info, indent=1))
    return ws.train_images


def train(request, ws) -> Path:
    model = ConditionalImageGAN(iterations=request.iterations, seed=request.seed)
    model.fit(ImageSet.load_npz(ws.train_images))
    model.save(ws.generator)
    pd.DataFrame(model.loss_history_).to_csv(ws.losses, index=False)
    return ws.generator


def sample(request, ws) -> Path:
    """Exactly the requested images; with `curate`, only those a real-data classifier assigns to their class."""
    model = ConditionalImageGAN.load(ws.generator)
    train_set = ImageSet.load_npz(ws.train_images)
    counts = np.bincount(train_set.labels, minlength=len(train_set.class_names))
    draw = (lambda seed: model.sample_balanced(dict(enumerate(counts.tolist())), seed=seed)) if request.balance \
        else (lambda seed: model.sample(request.rows, request.conditions, seed=seed))
    images = draw(request.draw_seed)
    info = ws.read_info()
    if request.curate:
        classifier = train_classifier(train_set.images, train_set.labels, len(train_set.class_names), seed=request.seed)
        wanted = len(images)
        kept, drawn = [], 0
        for round_ in range(MAX_CURATION_ROUNDS):
            batch = images if round_ == 0 else draw(request.draw_seed + 1000 + round_)
            drawn += len(batch)
            confidence = predict_proba(classifier, batch.images)[np.arange(len(batch)), batch.labels]
            kept.append(batch.subset(np.flatnonzero(confidence >= request.curate)))
            if sum(len(k) for k in kept) >= wanted:
                break
        merged = ImageSet(np.concatenate([k.images for k in kept]), np.concatenate([k.labels for k in kept]),
                          images.class_names)
        if len(merged) < wanted:
            raise InputError(f"curation at confidence {request.curate} kept {len(merged)} of {drawn} images, "
                             f"fewer than the {wanted} requested; lower the threshold or train longer")
        images = merged.subset(np.arange(wanted))
        info["curation"] = {"threshold": request.curate, "drawn": drawn, "dropped": drawn - len(merged)}
    ws.info.write_text(json.dumps(info, indent=1))
    images.save_npz(ws.synthetic_images)
    return ws.synthetic_images


def evaluate(request, ws) -> Path:

    train_set, holdout, synthetic = (ImageSet.load_npz(p) for p in (ws.train_images, ws.holdout_images,
                                                                      ws.synthetic_images))
    result = evaluate_images(train_set, holdout, synthetic, seed=request.seed)
    info = ws.read_info()
    for key, value in info.get("duplicates", {}).items():
        result.metrics[f"data_train_holdout_{key}"] = value
    if "curation" in info:
        result.metrics["curation_dropped"] = info["curation"]["dropped"]
    gate = apply_gate(result.metrics, request.gate.thresholds())
    figures_dir = ws.figures
    figures_dir.mkdir(parents=True, exist_ok=True)
    names = train_set.class_names
    per_class = [(f"synthetic: {names[k]}", synthetic.images[synthetic.labels == k][:10])
                 for k in range(len(names)) if (synthetic.labels == k).any()]
    figures = {
        "samples_per_class": plots.image_grid(per_class, "Synthetic samples per class"),
        "dcr": plots.distance_histograms(result.feature_distances["feature_synthetic_to_train"],
                                         result.feature_distances["feature_holdout_to_train"],
                                         "Distance to closest training image (CNN feature space)"),
        "membership_roc": plots.roc_curves(result.membership_roc, "Membership inference"),
        "losses": plots.loss_curves(pd.read_csv(ws.losses)),
    }
    if shows_real_images(request):
        side_by_side = []
        for k in range(len(names)):
            if (synthetic.labels == k).any():
                side_by_side += [(f"real: {names[k]}", train_set.images[train_set.labels == k][:10]),
                                 (f"synthetic: {names[k]}", synthetic.images[synthetic.labels == k][:10])]
        figures["real_vs_synthetic"] = plots.image_grid(side_by_side, "Real (train) vs synthetic")
        figures["nearest_pairs"] = plots.nearest_pairs(synthetic.images, train_set.images, result.nearest_pairs)
    else:  # the closest synthetic images and their distances, without the training images beside them
        figures["nearest_pairs"] = plots.nearest_pairs(synthetic.images, None, result.nearest_pairs)
    for name, figure in figures.items():
        figure.savefig(figures_dir / f"{name}.png", dpi=80)
        plots.plt.close(figure)
    scores = {"metrics": result.metrics, "gate": gate.to_dict(),
              "rows": {"real_train": len(train_set), "holdout": len(holdout), "synthetic": len(synthetic)}}
    write_scores(scores, ws.evaluation, request.name)
    return ws.metrics


def shows_real_images(request) -> bool:
    """Figures may show real training images only where real images are published anyway: never for
    `synthetic_only` or `private` requests (their report, datasheet and MLflow run hold no real pixel)."""
    return request.publish == "augmented" and not request.private


def package(request, ws) -> Path:
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
