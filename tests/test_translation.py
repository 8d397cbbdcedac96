"""The translation engine (CycleGAN method): it learns to turn one class's images into the other's,
keeps each image's layout, saves no images, and goes through the whole request as the GAN does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synth.errors import InputError
from synth.generators.translation import TranslationGAN
from synth.images import ImageSet


def two_domains(n: int = 40, size: int = 28, seed: int = 0) -> ImageSet:
    """Class "dark": a bright square on a dark ground; class "bright": a dark square on a bright ground;
    the squares anywhere. Translation should flip the ground and keep the square where it was."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, (ground, square) in enumerate(((30, 220), (220, 30))):
        for _ in range(n):
            image = np.full((size, size), ground, np.uint8)
            y, x = rng.integers(2, size - 10, 2)
            image[y:y + 8, x:x + 8] = square
            images.append(np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8))
            labels.append(label)
    return ImageSet(np.stack(images), np.array(labels), ["dark", "bright"])


@pytest.fixture(scope="module")
def trained():
    images = two_domains()
    return images, TranslationGAN(iterations=250, seed=0, source="dark", target="bright").fit(images)


def test_translation_turns_source_images_into_target_ones_and_keeps_their_layout(trained):
    images, model = trained
    out = model.sample(30, {"label": "bright"}, seed=1, sources=images)
    assert len(out) == 30 and (out.labels == 1).all()
    sources = images.images[model.source_indices_]
    assert (images.labels[model.source_indices_] == 0).all() and len(set(model.source_indices_)) == 30
    assert out.images.mean() > 150 > sources.mean()  # the ground turned bright
    # the layout stays: each image is darkest where its source is brightest (the square)
    corr = [np.corrcoef(s.ravel().astype(float), t.ravel().astype(float))[0, 1] for s, t in zip(sources, out.images)]
    assert np.median(corr) < -0.3, np.median(corr)
    assert model.cycle_error(sources) < 40


def test_translation_saves_weights_only_and_loads_back_the_same(trained, tmp_path):
    from synth.generators import load_generator

    images, model = trained
    model.save(tmp_path / "model")
    again = load_generator(tmp_path / "model")
    assert isinstance(again, TranslationGAN) and again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.sample(10, seed=3, sources=images).images,
                                  model.sample(10, seed=3, sources=images).images)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "model").iterdir())
    assert images.images[0].tobytes()[:64] not in stored


def test_translation_balance_fills_the_target_class_up_to_the_largest(trained):
    images, model = trained
    lopsided = images.subset(np.r_[np.arange(40), np.arange(40, 50)])  # 40 dark, 10 bright
    out = model.sample_balanced({0: 40, 1: 10}, seed=0, sources=lopsided)
    assert len(out) == 30 and (out.labels == 1).all()


@pytest.mark.parametrize("params, message", [
    ({}, "this set has 3"),  # three classes and no pair named
    ({"source": "a", "target": "nope"}, "does not exist"),
    ({"source": "a", "target": "a"}, "two different classes"),
])
def test_translation_refuses_unclear_domains_before_training(params, message):
    rng = np.random.default_rng(0)
    images = ImageSet(rng.integers(0, 255, (30, 28, 28), dtype=np.uint8), np.arange(30) % 3, ["a", "b", "c"])
    with pytest.raises(InputError, match=message):
        TranslationGAN(iterations=1, **params).fit(images)


@pytest.mark.parametrize("fields, message", [
    ({"engine": "translate", "publish": "synthetic_only"}, "derives each image from a real training image"),
    ({"translate": "label=1:label=0"}, "engine translate"),  # a pair without the engine
    ({"engine": "translate", "translate": "1-0"}, "SOURCE:TARGET"),
    ({"engine": "translate", "curate": 0.8}, "do not combine"),
])
def test_translation_requests_that_cannot_be_honoured_are_refused(fields, message):
    from pipelines.settings import build_request

    with pytest.raises(InputError, match=message):
        build_request(**{"data": "builtin:breastmnist", **fields})


def test_a_request_without_iterations_trains_its_engines_own_default():
    """The two image engines differ threefold in their steps (batch 64 against 8): a request that sets
    none gets each engine's own, read from its signature, and its runs log that number; one that sets
    them gets its own."""
    from pipelines.kinds.images import Images
    from pipelines.settings import build_request
    from synth.generators.image_gan import ConditionalImageGAN

    steps = {engine: Images().iterations(build_request(data="builtin:breastmnist", engine=engine))
             for engine in ("image_gan", "translate")}
    assert steps == {"image_gan": ConditionalImageGAN().iterations, "translate": TranslationGAN().iterations}
    assert steps["translate"] > steps["image_gan"]
    assert Images().iterations(build_request(data="builtin:breastmnist", engine="translate", iterations=7)) == 7
    assert Images().training_settings(build_request(data="builtin:breastmnist", engine="translate")) == {
        "iterations": TranslationGAN().iterations}  # what MLflow logs


def test_an_image_engine_on_a_table_is_refused_before_training(state_dir):
    from pipelines.run import prepare
    from pipelines.settings import Settings, build_request
    from pipelines.workspace import Workspace

    request = build_request(data="builtin:breast_cancer", target="diagnosis", engine="translate")
    with pytest.raises(InputError, match="is for image sets"):
        prepare(request, Workspace(state_dir / "runs" / "x"), Settings.from_env())
    assert not (state_dir / "runs" / "x" / "model").exists()


def test_a_two_folder_domain_request_publishes_translated_images(state_dir, prefect_harness, tmp_path):
    from PIL import Image

    from pipelines.flow import augment_dataset

    scans = tmp_path / "scans"
    images = two_domains(n=30, seed=1)
    for image, label in zip(images.images, images.labels):
        folder = scans / ("site_a" if label == 0 else "site_b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{len(list(folder.iterdir())):03d}.png")
    summary = augment_dataset(data=str(scans), engine="translate", translate="site_a:site_b", rows=12,
                              iterations=40, name="sites")
    assert summary["status"] == "published", summary["gate"]
    metrics = summary["metrics"]
    assert {"fidelity_translation_cycle_error", "privacy_translation_source_rmse",
            "privacy_translation_other_rmse", "fidelity_label_agreement_min"} <= set(metrics)
    assert summary["rows"]["synthetic"] == 12 and summary["registry"]["rev"] == "sites-v1"
    figures = Path(summary["workspace"]) / "evaluation" / "figures"
    assert (figures / "translation_pairs.png").is_file()
