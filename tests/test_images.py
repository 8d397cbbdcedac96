"""Image sets: loaders, bad input, the conditional image GAN, image scores, and the image request."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.gate import GateThresholds, apply_gate
from evaluation.images import UTILITY_EPOCHS, class_fidelity, evaluate_images, frechet_distance, prdc
from synth.classifier import BATCH, out_of_fold_probabilities
from synth.errors import InputError
from synth.generators.image_gan import CONDITIONS_FILE, ConditionalImageGAN, condition_bins
from synth.images import ImageSet, cross_split_duplicates, load_image_folder, load_image_splits
from tests.conftest import SHARED_DATA


def blobs(n: int, label: int, size: int = 28, seed: int = 0) -> np.ndarray:
    """Class 0: a bright disc; class 1: a bright bar; noisy, so no two images are equal."""
    rng = np.random.default_rng(seed + 17 * label)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        cy, cx = rng.integers(8, size - 8, 2)
        shape = ((yy - cy) ** 2 + (xx - cx) ** 2 < 30) if label == 0 else (abs(yy - cy) < 3)
        out.append((shape * 180 + rng.normal(40, 20, (size, size))).clip(0, 255).astype(np.uint8))
    return np.stack(out)


def write_png_folder(root, per_class: int = 30, size: int = 28):
    from PIL import Image

    for label, name in enumerate(["malignant", "benign"]):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(blobs(per_class, label, size)):
            Image.fromarray(image).save(root / name / f"{i:03d}.png")
    return root


def write_dicom(path, image: np.ndarray, with_pixels: bool = True):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if with_pixels:
        ds.PixelData = image.tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_breastmnist_official_split_and_duplicates_are_reported():
    if not (SHARED_DATA / "breastmnist.npz").exists():
        pytest.skip("BreastMNIST not in ../shared/data")
    train, holdout = load_image_splits("builtin:breastmnist")
    assert train.images.shape == (624, 28, 28) and holdout.images.shape == (156, 28, 28)
    assert train.class_names == ["malignant", "normal_or_benign"]
    duplicates = cross_split_duplicates(train, holdout)
    assert duplicates["exact_duplicates"] >= 1 and duplicates["conflicting_labels"] >= 1


@pytest.mark.parametrize("label_shape", ["flat", "column"])
def test_medmnist_npz_accepts_both_label_shapes(tmp_path, label_shape):
    images = np.concatenate([blobs(20, 0), blobs(20, 1)])
    labels = np.r_[np.zeros(20), np.ones(20)].astype(np.uint8)
    labels = labels if label_shape == "flat" else labels[:, None]
    np.savez(tmp_path / "set.npz", train_images=images, train_labels=labels, test_images=images[::4],
             test_labels=labels[::4])
    train, holdout = load_image_splits(str(tmp_path / "set.npz"))
    assert len(train) == 40 and len(holdout) == 10 and train.labels.ndim == 1


def test_png_and_dicom_folders_load_with_class_names(tmp_path):
    pngs = load_image_folder(write_png_folder(tmp_path / "png"))
    assert pngs.images.shape == (60, 28, 28) and pngs.class_names == ["benign", "malignant"]
    for label, name in enumerate(["a", "b"]):
        (tmp_path / "dcm" / name).mkdir(parents=True)
        for i, image in enumerate(blobs(6, label, size=32)):
            write_dicom(tmp_path / "dcm" / name / f"{i}.dcm", image)
    dicoms = load_image_folder(tmp_path / "dcm", size=28)
    assert dicoms.images.shape == (12, 28, 28) and set(dicoms.labels) == {0, 1}


def test_bad_image_inputs_are_refused_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no class sub-folders"):
        load_image_folder(tmp_path / "empty")
    single = write_png_folder(tmp_path / "single")
    import shutil

    shutil.rmtree(single / "benign")
    with pytest.raises(InputError, match="single class"):
        load_image_folder(single)
    mixed = write_png_folder(tmp_path / "mixed")
    from PIL import Image

    Image.fromarray(blobs(1, 0, size=40)[0]).save(mixed / "benign" / "big.png")
    with pytest.raises(InputError, match="different sizes"):
        load_image_folder(mixed)
    assert load_image_folder(mixed, size=28).images.shape[1:] == (28, 28)
    broken = write_png_folder(tmp_path / "broken")
    (broken / "benign" / "zero.png").write_bytes(b"")
    (broken / "benign" / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=r"unreadable image files: benign/junk.png .*benign/zero.png"):
        load_image_folder(broken)
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        assert len(load_image_folder(broken, skip_corrupt=True)) == 60
    (tmp_path / "nopix" / "a").mkdir(parents=True)
    (tmp_path / "nopix" / "b").mkdir(parents=True)
    write_dicom(tmp_path / "nopix" / "a" / "x.dcm", blobs(1, 0)[0], with_pixels=False)
    write_dicom(tmp_path / "nopix" / "b" / "y.dcm", blobs(1, 1)[0])
    with pytest.raises(InputError, match="no pixel data"):
        load_image_folder(tmp_path / "nopix")


@pytest.fixture(scope="module")
def tiny_gan():
    images = ImageSet(np.concatenate([blobs(40, 0), blobs(40, 1)]), np.r_[np.zeros(40), np.ones(40)].astype(np.int64),
                      ["disc", "bar"])
    return images, ConditionalImageGAN(iterations=20, batch_size=16, seed=3).fit(images)


def test_image_gan_samples_exactly_the_requested_class_and_round_trips(tiny_gan, tmp_path):
    images, model = tiny_gan
    out = model.sample(37, {"label": "bar"})
    assert out.images.shape == (37, 28, 28) and out.images.dtype == np.uint8 and (out.labels == 1).all()
    assert (model.sample(5, {"label": 0}).labels == 0).all()
    with pytest.raises(InputError, match="label 'cat' does not exist"):
        model.sample(5, {"label": "cat"})
    balanced = model.sample_balanced({0: 40, 1: 25})
    assert len(balanced) == 15 and (balanced.labels == 1).all()
    model.save(tmp_path / "g")
    loaded = ConditionalImageGAN.load(tmp_path / "g")
    # bit for bit, over enough images that a rounding difference (another memory layout) would show
    assert np.array_equal(loaded.sample(500, {"label": 1}, seed=5).images, model.sample(500, {"label": 1}, seed=5).images)
    (tmp_path / "g" / CONDITIONS_FILE).unlink()  # a model saved before soft labels: hard labels
    assert all(torch.equal(c, torch.eye(2)[k:k + 1]) for k, c in enumerate(ConditionalImageGAN.load(tmp_path / "g").conditions_))


def test_anti_collapse_settings_round_trip_and_policies_are_checked(tmp_path):
    """The minibatch-std discriminator, the mode-seeking term, a DiffAugment subset and the old hinge
    loss train and round-trip; a misspelt augmentation policy or loss is refused before training."""
    images = ImageSet(np.concatenate([blobs(20, 0), blobs(20, 1)]), np.r_[np.zeros(20), np.ones(20)].astype(np.int64),
                      ["disc", "bar"])
    model = ConditionalImageGAN(iterations=4, batch_size=8, mode_seeking=0.05, batch_std=True,
                                augment="translation", loss="hinge").fit(images)
    model.save(tmp_path / "g")
    loaded = ConditionalImageGAN.load(tmp_path / "g")
    assert loaded.augment == "translation" and loaded.mode_seeking == 0.05 and loaded.batch_std
    assert loaded.loss == "hinge" and ConditionalImageGAN().loss == "relativistic"
    assert np.array_equal(loaded.sample(6, {"label": 0}, seed=2).images, model.sample(6, {"label": 0}, seed=2).images)
    with pytest.raises(InputError, match="unknown DiffAugment policy colour"):
        ConditionalImageGAN(augment="colour,cutout")
    with pytest.raises(InputError, match="loss must be one of relativistic, hinge, got 'wasserstein'"):
        ConditionalImageGAN(loss="wasserstein")


def test_soft_labels_are_out_of_fold_probabilities_saved_only_as_bin_means(tiny_gan):
    """Each training image's condition mixes its label with the class probabilities of a CNN that did
    not see it; the model keeps per class only means of bins of at least 4 images, sorted by the
    class's own weight, and draws sampling conditions between neighbouring bins."""
    images, model = tiny_gan
    proba, checkers = out_of_fold_probabilities(images, folds=4, seed=0)
    assert len(checkers) == 4
    assert proba.shape == (80, 2) and np.allclose(proba.sum(1), 1)
    assert (proba.argmax(1) == images.labels).mean() > 0.75  # discs and bars, told apart by CNNs that did not see them
    conditions = np.random.default_rng(0).dirichlet([1, 1], size=37)
    bins = condition_bins(conditions, 1)
    lowest_five = conditions[np.argsort(conditions[:, 1])[:5]]
    assert len(bins) == 9 and bool((bins[1:, 1] >= bins[:-1, 1]).all())
    assert np.allclose(bins[0].numpy(), lowest_five.mean(0), atol=1e-6)
    assert len(condition_bins(conditions[:7], 0)) == 1  # fewer than 8 images: one mean
    for k in (0, 1):
        assert bool((model.conditions_[k][:, k] >= 1 - model.soft_labels - 1e-6).all())
    labels = torch.tensor([0, 1] * 50)
    drawn = model._conditions(labels, torch.Generator().manual_seed(0))
    for k in (0, 1):
        own, bins_k = drawn[labels == k, k], model.conditions_[k][:, k]
        assert bool((own >= bins_k.min() - 1e-6).all() and (own <= bins_k.max() + 1e-6).all())


def test_class_spread_mixes_each_image_toward_another_class_within_its_bound(tiny_gan):
    """On top of the drawn conditions, class_spread gives a random share below it to another class;
    class weights and hard labels make the same images when the weights are one-hot."""
    _, model = tiny_gan
    labels = torch.tensor([0, 1] * 50)
    spread = copy.copy(model)
    spread.class_spread = 0.3
    base = model._conditions(labels, torch.Generator().manual_seed(0))
    weights = spread._conditions(labels, torch.Generator().manual_seed(0))  # the same draws, then the spread
    share = 1 - weights[torch.arange(100), labels] / base[torch.arange(100), labels]
    assert torch.allclose(weights.sum(1), torch.ones(100)) and (weights >= 0).all()
    assert bool(((share >= -1e-6) & (share < 0.3)).all()) and float(share.std()) > 0
    z = torch.randn(6, model.z_dim)
    hard = torch.tensor([0, 1, 0, 1, 0, 1])
    with torch.no_grad():
        soft = torch.nn.functional.one_hot(hard, 2).float()
        assert torch.allclose(model.generator_(z, hard), model.generator_(z, soft), atol=1e-6)
    with pytest.raises(InputError, match="class_spread"):
        ConditionalImageGAN(class_spread=0.6)
    with pytest.raises(InputError, match="soft_labels"):
        ConditionalImageGAN(soft_labels=1.5)


def test_minibatch_std_channel_is_the_spread_within_groups():
    from synth.generators.image_gan import minibatch_std

    alike = torch.ones(8, 3, 2, 2)
    spread = minibatch_std(alike)
    assert spread.shape == (8, 4, 2, 2) and float(spread[:, 3].abs().max()) == 0
    varied = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 2, 2)
    assert float(minibatch_std(varied)[:, 3].min()) > 1


def test_texture_channel_is_the_amplified_high_pass_residual():
    from synth.generators.image_gan import Discriminator, texture_channel

    flat = torch.full((2, 1, 8, 8), 0.3)
    assert texture_channel(flat, 4.0).shape == (2, 2, 8, 8)
    assert float(texture_channel(flat, 4.0)[:, 1].abs().max()) < 1e-6
    speckle = flat.clone()
    speckle[:, :, 4, 4] += 0.09  # one bright pixel: 8/9 of it above its 3x3 mean
    assert float(texture_channel(speckle, 4.0)[0, 1, 4, 4]) == pytest.approx(4 * 0.08, abs=1e-6)
    assert Discriminator(28, 2, texture=4.0).blocks[0].conv1.in_channels == 2
    assert Discriminator(28, 2).blocks[0].conv1.in_channels == 1
    with pytest.raises(InputError, match="d_texture"):
        ConditionalImageGAN(d_texture=-1)


def test_typicality_matching_keeps_draws_spread_like_the_training_images(tiny_gan, tmp_path):
    """Of candidates piled up near one bin, the kept ones fall about equally near each bin of the
    training images' own-class probabilities; the engine keeps the out-of-fold CNNs for it, draws the
    requested class reproducibly, and a saved model draws the same images bit for bit."""
    from synth.generators.image_gan import TYPICALITY_FILE, typical_choice

    bins = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
    own = torch.cat([torch.full((800,), 0.92), torch.rand(200, generator=torch.Generator().manual_seed(0))])
    chosen = typical_choice(own, bins, 100, torch.Generator().manual_seed(1))
    assert len(set(chosen.tolist())) == 100
    per_bin = torch.bincount(torch.bucketize(own[chosen], (bins[1:] + bins[:-1]) / 2), minlength=5)
    assert int(per_bin.min()) >= 12 and int(per_bin.max()) <= 28  # 20 each; 80 of 100 a plain draw would give
    images, model = tiny_gan
    assert len(model.checkers_) == 5 and all(len(b) == 10 for b in model.typicality_)  # 40 images a class
    assert model.typical_draws == 4
    plain = copy.copy(model)
    plain.typical_draws = 1
    drawn = model.sample(30, {"label": "disc"}, seed=2)
    assert drawn.images.shape == (30, 28, 28) and (drawn.labels == 0).all()
    assert not np.array_equal(drawn.images, plain.sample(30, {"label": "disc"}, seed=2).images)
    model.save(tmp_path / "g")
    loaded = ConditionalImageGAN.load(tmp_path / "g")
    assert loaded.typical_draws == 4
    assert np.array_equal(loaded.sample(300, {"label": 1}, seed=5).images, model.sample(300, {"label": 1}, seed=5).images)
    (tmp_path / "g" / TYPICALITY_FILE).unlink()  # a model saved before typicality matching: plain draws
    assert np.array_equal(ConditionalImageGAN.load(tmp_path / "g").sample(20, {"label": 1}, seed=5).images,
                          plain.sample(20, {"label": 1}, seed=5).images)
    with pytest.raises(InputError, match="typical_draws"):
        ConditionalImageGAN(typical_draws=0)


def test_feature_distances_and_prdc_on_known_cases():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    assert frechet_distance(a, b) < 0.5 < frechet_distance(a, b + 3)
    same = prdc(a, a.copy())
    assert same["precision"] == pytest.approx(1) and same["coverage"] == pytest.approx(1)
    assert prdc(a, b + 10)["precision"] == 0


def test_diversity_of_one_class_is_scored_against_that_class_with_the_holdout_as_ceiling():
    """Images of one class from that class's own distribution score near the real holdout's ceiling;
    against every training image (two classes) the same images could reach only that class's share."""
    rng = np.random.default_rng(0)
    centre = np.zeros(8), np.full(8, 4.0)
    f_train = np.vstack([rng.normal(centre[0], size=(100, 8)), rng.normal(centre[1], size=(300, 8))])
    train_labels = np.r_[np.zeros(100, int), np.ones(300, int)]
    f_hold = np.vstack([rng.normal(centre[0], size=(40, 8)), rng.normal(centre[1], size=(120, 8))])
    hold_labels = np.r_[np.zeros(40, int), np.ones(120, int)]
    fresh = rng.normal(centre[0], size=(300, 8))
    scores = class_fidelity(f_train, train_labels, f_hold, hold_labels, fresh, np.zeros(300, int), ["a", "b"])
    assert scores["fidelity_images_scored"] == 40  # drawn at the holdout class's size
    assert abs(scores["fidelity_coverage"] - scores["fidelity_coverage_real_reference"]) < 0.15
    assert abs(scores["fidelity_recall"] - scores["fidelity_recall_real_reference"]) < 0.15
    assert prdc(f_train, fresh)["recall"] <= 0.25 + 1e-9  # the old score: capped by class a's share
    collapsed = np.repeat(fresh[:1], 300, axis=0) + rng.normal(scale=0.01, size=(300, 8))
    low = class_fidelity(f_train, train_labels, f_hold, hold_labels, collapsed, np.zeros(300, int), ["a", "b"])
    assert low["fidelity_coverage"] < 0.2 and low["fidelity_recall"] < 0.1
    assert low["fidelity_fid"] > 5 * scores["fidelity_fid"]
    assert {"fidelity_coverage_a", "fidelity_recall_real_reference_a"} <= set(scores)


def test_copied_images_are_rejected_and_held_out_images_pass():
    train = ImageSet(np.concatenate([blobs(60, 0, seed=1), blobs(60, 1, seed=1)]),
                     np.r_[np.zeros(60), np.ones(60)].astype(np.int64), ["disc", "bar"])
    holdout = ImageSet(np.concatenate([blobs(30, 0, seed=2), blobs(30, 1, seed=2)]),
                       np.r_[np.zeros(30), np.ones(30)].astype(np.int64), ["disc", "bar"])
    fresh = ImageSet(np.concatenate([blobs(30, 0, seed=3), blobs(30, 1, seed=3)]),
                     np.r_[np.zeros(30), np.ones(30)].astype(np.int64), ["disc", "bar"])
    copied = train.subset(np.arange(0, 120, 2))
    ok = evaluate_images(train, holdout, fresh, seeds=1).metrics
    assert apply_gate(ok, GateThresholds()).passed, ok
    assert ok["utility_cnn_steps"] == UTILITY_EPOCHS * math.ceil(len(train) / BATCH)  # every arm, the same steps
    bad = evaluate_images(train, holdout, copied, seeds=1).metrics
    gate = apply_gate(bad, GateThresholds())
    assert bad["privacy_exact_copies"] == 60 and not gate.passed
    assert any("exact copies" in r for r in gate.reasons)


def write_dicom_folder(root, per_class: int = 40):
    for label, name in enumerate(["benign", "malignant"]):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(blobs(per_class, label, seed=9)):
            write_dicom(root / name / f"{i:03d}.dcm", image)
    return root


@pytest.mark.parametrize("write_folder", [write_png_folder, write_dicom_folder], ids=["png", "dicom"])
def test_image_request_through_the_flow_publishes_npz(tmp_path, state_dir, prefect_harness, write_folder):
    from tests.test_flow import dvc_get_file

    from pipelines.flow import augment_dataset

    folder = write_folder(tmp_path / "scans", per_class=40)
    # 15 iterations leave a collapsed generator: its 25 near-identical images can all sit nearest one
    # training image, which the DCR holdout test rightly calls memorisation-like (seen: p = 0.002).
    # This test is about the folder-to-registry path; the gate's own tests are in test_evaluation.
    summary = augment_dataset(data=str(folder), target="label", rows=25, conditions={"label": "malignant"},
                              iterations=15, name="scans", gate={"min_dcr_pvalue": 0.0, "min_label_agreement": 0.0})
    assert summary["status"] == "published" and summary["rows"]["synthetic"] == 25
    published = np.load(dvc_get_file(summary["registry"], "synthetic.npz", tmp_path / "s.npz"))
    assert published["images"].shape == (25, 28, 28) and (published["labels"] == 1).all()
    assert list(published["class_names"]) == ["benign", "malignant"]
    from mlflow import MlflowClient

    run = MlflowClient(summary["mlflow"]["tracking_uri"]).get_run(summary["mlflow"]["run_id"])
    assert run.data.tags["synthaug.engine"] == "image_gan" and run.data.params["engine"] == "image_gan"
    assert {"fidelity_fid", "fidelity_fid_real_reference", "fidelity_coverage", "privacy_mia_auc",
            "utility_cnn_lift"} <= set(summary["metrics"])
    from tests.test_report import CHROMIUM, assert_renders_in_chromium

    if CHROMIUM is not None:
        report = Path(summary["workspace"]) / "evaluation" / "report.html"
        assert_renders_in_chromium(report, tmp_path, min_images=6)


def test_bad_image_requests_exit_nonzero_and_publish_nothing(tmp_path):
    from PIL import Image

    from tests.test_flow import cli, registry_tags

    state = tmp_path / ".synthaug"
    (tmp_path / "empty").mkdir()
    single = write_png_folder(tmp_path / "single")
    for path in (single / "benign").iterdir():
        path.unlink()
    (single / "benign").rmdir()
    mixed = write_png_folder(tmp_path / "mixed")
    Image.fromarray(blobs(1, 0, size=40)[0]).save(mixed / "benign" / "big.png")
    corrupt = write_png_folder(tmp_path / "corrupt")
    (corrupt / "malignant" / "zero.png").write_bytes(b"")
    good = write_png_folder(tmp_path / "good")
    cases = [
        ([str(tmp_path / "empty")], "no class sub-folders"),
        ([str(single)], "single class"),
        ([str(mixed)], "different sizes"),
        ([str(corrupt)], "unreadable image files: malignant/zero.png"),
        ([str(good), "--condition", "label=cat"], "label 'cat' does not exist"),
        ([str(good), "--condition", "colour=red"], "image conditions take only 'label'"),
    ]
    for data, message in cases:
        done = cli(["augment", "--data", *data, "--target", "label", "--json"], state, cwd=tmp_path)
        assert done.returncode == 2 and done.stdout == "", (data, done.stderr[-500:])
        assert done.stderr.startswith("error: ") and message in done.stderr and done.stderr.count("\n") == 1
    assert registry_tags(state) == []


@pytest.mark.skipif(not (SHARED_DATA / "breastmnist.npz").exists(), reason="BreastMNIST not in ../shared/data")
def test_breastmnist_request_report_renders_in_chromium(tmp_path, state_dir, prefect_harness, breastmnist_quarter):
    """A BreastMNIST request's report (a quarter of the images and a short training: the subject is the
    report, not the GAN; the utility CNNs' steps follow the training set's size)."""
    from pipelines.flow import augment_dataset
    from tests.test_report import CHROMIUM, assert_renders_in_chromium

    source, counts = breastmnist_quarter
    state = augment_dataset(data=str(source), target="label", rows=60, conditions={"label": "0"},
                            iterations=30, name="breastmnist", gate={"min_label_agreement": 0.0}, return_state=True)
    summary = state.result(raise_on_failure=False)
    with np.load(source) as split:
        holdout = len(split["test_labels"])
    assert summary["rows"] == {"real_train": counts.sum(), "holdout": holdout, "synthetic": 60}  # train + val | test
    report = Path(summary["workspace"]) / "evaluation" / "report.html"
    text = report.read_text()
    assert "fidelity_fid_real_reference" in text and "utility_cnn" in text and "nearest" in text
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (make test installs Debian's package)")
    assert_renders_in_chromium(report, tmp_path, min_images=6)


def test_images_of_the_wrong_class_are_rejected_by_the_gate():
    """A generator that makes the other class (here: real images of one class labelled as the other)
    is refused: mislabelled images poison a training set. Images of the right class pass that check."""
    train = ImageSet(np.concatenate([blobs(60, 0), blobs(60, 1)]), np.r_[np.zeros(60, int), np.ones(60, int)],
                     ["malignant", "benign"])
    holdout = ImageSet(np.concatenate([blobs(20, 0, seed=3), blobs(20, 1, seed=3)]),
                       np.r_[np.zeros(20, int), np.ones(20, int)], ["malignant", "benign"])
    wrong = ImageSet(blobs(30, 1, seed=7), np.zeros(30, int), ["malignant", "benign"])  # bars called discs
    metrics = evaluate_images(train, holdout, wrong, seeds=1).metrics
    assert metrics["fidelity_label_agreement_min"] == metrics["fidelity_label_agreement_malignant"] < 0.2
    gate = apply_gate(metrics, GateThresholds())
    assert not gate.passed and any("assign only" in r and "mislabelled" in r and "candidates: 2" in r
                                   for r in gate.reasons)
    assert metrics["fidelity_label_agreement_real_reference_malignant"] > 0.9
    # without a threshold the same: images of the other class rank like the real images of it (AUC near
    # 0.5), where the real malignant ones stand well above them
    assert metrics["fidelity_label_separation_malignant"] < 0.6
    assert metrics["fidelity_label_separation_real_reference_malignant"] > 0.9
    assert metrics["fidelity_label_separation_relative_min"] < 0.2
    right = ImageSet(blobs(30, 0, seed=7), np.zeros(30, int), ["malignant", "benign"])
    metrics = evaluate_images(train, holdout, right, seeds=1).metrics
    assert metrics["fidelity_label_agreement_min"] > 0.9
    assert metrics["fidelity_label_agreement_relative_min"] > 0.9
    assert metrics["fidelity_label_separation_relative_min"] > 0.9
    assert not any("assign only" in r for r in apply_gate(metrics, GateThresholds()).reasons)
