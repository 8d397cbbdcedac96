"""Scores for synthetic images, all offline: no Inception weights.

A small CNN trained on the real training split is the feature extractor and the
label checker. Privacy metrics carry the same names as the tabular ones
(`privacy_exact_copies`, `privacy_near_copy_pvalue`, `privacy_dcr_pvalue`,
`privacy_mia_auc`), so one publish gate serves both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import linalg
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from evaluation.privacy import dcr_test, exact_copy_test, metric_suffix, near_copy_test, strongest_attack
from evaluation.utility import lift_interval
from synth import progress
from synth.classifier import BATCH, SmallCNN, features, predict_proba, train_classifier
from synth.errors import InputError
from synth.images import ImageSet

# Every utility arm trains for this many passes over the real training images' batches, its learning
# rate decayed to zero on a cosine. At the 15 constant-rate passes used until session 18 the real-only
# CNN was still learning, and the GAN images' "lift" came from that (development split, five seeds:
# real 0.877 -> 0.905 at 60 passes, real + GAN 0.888 -> 0.909;
# benchmarks/HISTORY.md, session 18).
UTILITY_EPOCHS = 60
# The utility arms: which images, which augmentation, class-weighted loss or not. Every arm gets the
# same number of optimiser steps (never a fixed epoch count over sets of different sizes).
ARMS = {
    "real": ("real", "none", False),
    "real_classical": ("real", "classical", False),
    "real_classical_weighted": ("real", "classical", True),
    "augmented": ("augmented", "none", False),
    "augmented_classical": ("augmented", "classical", False),
    "augmented_classical_weighted": ("augmented", "classical", True),
    "synthetic": ("synthetic", "none", False),
}
NEAR_PERCENTILE = 5.0  # memorisation: closer to a training image than 95 % of holdout images are


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID's formula in our feature space: |μa − μb|² + Tr(Σa + Σb − 2(ΣaΣb)^½)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(root)))


def kernel_distance(a: np.ndarray, b: np.ndarray, subsets: int = 10, size: int = 500, seed: int = 0) -> float:
    """KID: unbiased MMD² with the cubic polynomial kernel, averaged over random subsets."""
    rng = np.random.default_rng(seed)
    size = min(size, len(a), len(b))
    dim = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / dim + 1) ** 3, ((y @ y.T) / dim + 1) ** 3, ((x @ y.T) / dim + 1) ** 3
        off = size * (size - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(values))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k-NN balls."""
    real_radius = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, -1]
    fake_radius = NearestNeighbors(n_neighbors=k + 1).fit(fake).kneighbors(fake)[0][:, -1]
    real_to_fake = np.sqrt(((real[:, None, :] - fake[None, :, :]) ** 2).sum(-1)) if len(real) * len(fake) < 4e6 \
        else None
    if real_to_fake is None:  # large sets: neighbours from an index instead of all pairs
        dist, idx = NearestNeighbors(n_neighbors=min(50, len(real))).fit(real).kneighbors(fake)
        inside = dist < real_radius[idx]
        precision = float(inside.any(1).mean())
        density = float(inside.sum() / (k * len(fake)))
        covered = np.zeros(len(real), bool)
        covered[idx[inside]] = True
        dist_r, idx_r = NearestNeighbors(n_neighbors=min(50, len(fake))).fit(fake).kneighbors(real)
        recall = float((dist_r < fake_radius[idx_r]).any(1).mean())
        return {"precision": precision, "recall": recall, "density": density, "coverage": float(covered.mean())}
    inside_real = real_to_fake < real_radius[:, None]
    return {"precision": float(inside_real.any(0).mean()),
            "recall": float((real_to_fake < fake_radius[None, :]).any(1).mean()),
            "density": float(inside_real.sum() / (k * len(fake))),
            "coverage": float(inside_real.any(1).mean())}


def class_fidelity(f_train: np.ndarray, train_labels: np.ndarray, f_hold: np.ndarray, hold_labels: np.ndarray,
                   f_syn: np.ndarray, syn_labels: np.ndarray, class_names: list[str], seed: int = 0,
                   repeats: int = 5, k: int = 5) -> dict[str, float]:
    """Fréchet distance and precision/recall/density/coverage of each published class against the real
    training images of that class, beside the same scores of the real holdout images of that class
    (the ceiling). Synthetic images are drawn at the holdout class's size (`repeats` seeded subsets,
    averaged), since all five scores move with sample size. Against every training image, 300 images
    of one class could never reach a recall above that class's share of the training set.
    The headline `fidelity_<score>` is the published class with the lowest coverage."""
    rng = np.random.default_rng(seed)
    per_class: dict[str, dict[str, float]] = {}
    for c in np.unique(syn_labels):
        real, hold, syn = f_train[train_labels == c], f_hold[hold_labels == c], f_syn[syn_labels == c]
        size = min(len(hold), len(syn))
        if size < 3 or len(real) < 3:
            continue  # too few images of this class to score neighbourhoods
        neighbours = min(k, size - 1, len(real) - 1)
        draws = [syn[rng.choice(len(syn), size, replace=False)] for _ in range(repeats)]
        scored = [prdc(real, d, neighbours) for d in draws]
        scores = {"fid": float(np.mean([frechet_distance(d, real) for d in draws])),
                  **{key: float(np.mean([s[key] for s in scored])) for key in scored[0]}}
        reference = prdc(real, hold[rng.choice(len(hold), size, replace=False)], neighbours)
        scores.update({f"{key}_real_reference": value for key, value in reference.items()})
        scores["fid_real_reference"] = frechet_distance(hold, real)
        scores["images_scored"] = float(size)
        per_class[metric_suffix(class_names[c])] = scores
    out: dict[str, float] = {}
    for name, scores in per_class.items():
        out.update({f"fidelity_{key}_{name}": value for key, value in scores.items()})
    if per_class:  # the headline: every score of the class with the lowest coverage
        worst = min(per_class.values(), key=lambda scores: scores["coverage"])
        out.update({f"fidelity_{key}": value for key, value in worst.items()})
    return out


def label_agreement(predicted: np.ndarray, labels: np.ndarray, class_names: list[str],
                    reference_predicted: np.ndarray, reference_labels: np.ndarray) -> dict[str, float]:
    """Share of synthetic images a CNN trained on real images assigns to the class they were made
    for: overall, per published class, and the lowest of those; beside it the share of real holdout
    images of that class the same CNN assigns to it, and the ratio of the two (capped at 1), whose
    lowest value the gate reads. On a chest X-ray set a balance request published 'normal' images that
    the CNN called pneumonia 88 % of the time; on BreastMNIST the CNN itself assigns only 36–95 % of
    real malignant holdout images to their class (one CNN per seed; 71–79 % for five together), so
    an absolute bar would reject real images and reward generators that make only the most typical
    image of a class."""
    out = {"fidelity_label_agreement": float((predicted == labels).mean())}
    relative = {}
    for k in np.unique(labels):
        name = metric_suffix(class_names[k])
        share = float((predicted[labels == k] == k).mean())
        real = reference_predicted[reference_labels == k]
        reference = float((real == k).mean()) if len(real) else float("nan")
        out[f"fidelity_label_agreement_{name}"] = share
        out[f"fidelity_label_agreement_real_reference_{name}"] = reference
        if not len(real):  # no holdout image of the class: the absolute share
            relative[name] = share
        elif reference == 0:  # a class the CNNs never recognise: fail closed
            relative[name] = 0.0
        else:
            relative[name] = min(1.0, share / reference)
        out[f"fidelity_label_agreement_relative_{name}"] = relative[name]
    out["fidelity_label_agreement_min"] = min(out[f"fidelity_label_agreement_{n}"] for n in relative)
    out["fidelity_label_agreement_relative_min"] = min(relative.values())
    return out


def separation_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """The chance that a `positive` score is above a `negative` one (ties count half): the AUC."""
    return float(roc_auc_score(np.r_[np.ones(len(positive)), np.zeros(len(negative))], np.r_[positive, negative]))


def label_separation(probas: list[np.ndarray], labels: np.ndarray, class_names: list[str],
                     reference_probas: list[np.ndarray], reference_labels: np.ndarray) -> dict[str, float]:
    """Per published class, each checker's AUC of its probability of that class for the synthetic images
    against the real holdout images of the other classes (averaged over the checkers), beside the same
    for the real holdout images of the class; relative: (AUC - 0.5) over the real images' (at most 1).
    No decision threshold moves it, unlike `label_agreement`'s shares: the gate's five CNNs call 5-95 %
    of the real malignant BreastMNIST test images malignant while their AUCs lie within 0.845-0.892
    (benchmarks/HISTORY.md, session 34). Reported beside the gate's figure; the gate does not read it."""
    out, relative = {}, {}
    for k in np.unique(labels):
        others, own = reference_labels != k, reference_labels == k
        if not others.any() or not own.any():
            continue
        name = metric_suffix(class_names[k])
        synthetic = np.mean([separation_auc(p[labels == k, k], q[others, k]) for p, q in zip(probas, reference_probas)])
        real = np.mean([separation_auc(q[own, k], q[others, k]) for q in reference_probas])
        out[f"fidelity_label_separation_{name}"] = float(synthetic)
        out[f"fidelity_label_separation_real_reference_{name}"] = float(real)
        relative[name] = float(min(1.0, (synthetic - 0.5) / (real - 0.5))) if real > 0.5 else 0.0
        out[f"fidelity_label_separation_relative_{name}"] = relative[name]
    if relative:
        out["fidelity_label_separation_relative_min"] = min(relative.values())
    return out


def label_checkers(train: ImageSet, seed: int = 0, members: int = 5) -> list[SmallCNN]:
    """Five CNNs trained on the real images with different seeds: one CNN's calls on real malignant
    BreastMNIST images swing from 36 % to 95 % with its seed; the average of five is steadier."""
    return [train_classifier(train.images, train.labels, len(train.class_names), seed=seed + i)
            for i in range(members)]


def ensemble_vote(probas: list[np.ndarray]) -> np.ndarray:
    """The class the checkers' averaged probabilities favour, image by image."""
    return np.mean(probas, axis=0).argmax(1)


def curate(draw: Callable[[int], ImageSet], train: ImageSet, threshold: float, first_seed: int, seed: int = 0,
           max_rounds: int = 20) -> tuple[ImageSet, dict]:
    """As many images as `draw(first_seed)` makes, each one a classifier trained on the real images
    assigns to its class with at least `threshold` confidence; further draws replace those dropped.
    Returns them and what curation did (threshold, drawn, dropped), which the report states."""
    first = draw(first_seed)
    classifier = train_classifier(train.images, train.labels, len(train.class_names), seed=seed)
    kept, drawn = [], 0
    for round_ in range(max_rounds):
        batch = first if round_ == 0 else draw(first_seed + 1000 + round_)
        drawn += len(batch)
        confidence = predict_proba(classifier, batch.images)[np.arange(len(batch)), batch.labels]
        kept.append(batch.subset(np.flatnonzero(confidence >= threshold)))
        if sum(len(k) for k in kept) >= len(first):
            break
    merged = ImageSet(np.concatenate([k.images for k in kept]), np.concatenate([k.labels for k in kept]),
                      first.class_names)
    if len(merged) < len(first):
        raise InputError(f"curation at confidence {threshold} kept {len(merged)} of {drawn} images, "
                         f"fewer than the {len(first)} requested; lower the threshold or train longer")
    return merged.subset(np.arange(len(first))), {"threshold": threshold, "drawn": drawn,
                                                  "dropped": drawn - len(merged)}


def translation_scores(train: ImageSet, synthetic: ImageSet, source_indices: np.ndarray) -> dict[str, float]:
    """A translated image is made from one real training image, so it is close to it by design; how
    close, beside how close it comes to every other training image (pixel RMSE, 0-255)."""
    made, train_pixels = (x.reshape(len(x), -1).astype(np.float64) for x in (synthetic.images, train.images))
    own = np.sqrt(((made - train_pixels[source_indices]) ** 2).mean(1))
    distances = np.sqrt(np.maximum(0.0, (made ** 2).mean(1)[:, None] + (train_pixels ** 2).mean(1)[None, :]
                                   - 2 * made @ train_pixels.T / made.shape[1]))
    distances[np.arange(len(made)), source_indices] = np.inf
    other = distances.min(1)
    return {"privacy_translation_source_rmse": float(own.mean()),
            "privacy_translation_other_rmse": float(other.mean()),
            "privacy_translation_nearer_source": float((own < other).mean())}


@dataclass
class ImageEvaluation:
    metrics: dict[str, float]
    nearest_pairs: list[tuple[int, int, float]]  # (synthetic index, train index, pixel distance), closest first
    feature_distances: dict[str, np.ndarray]
    membership_roc: dict[str, tuple[np.ndarray, np.ndarray]]


def image_fidelity(train: ImageSet, holdout: ImageSet, synthetic: ImageSet, checkers: list[SmallCNN],
                   seed: int = 0) -> tuple[dict[str, float], np.ndarray, np.ndarray, np.ndarray]:
    """The fidelity scores and the (train, holdout, synthetic) features they were computed in. The
    checkers are a parameter so that several draws (benchmarks/image_gan.py's `--train-seeds`) are
    scored by the same CNNs."""
    f_train, f_hold, f_syn = (features(checkers[0], s.images) for s in (train, holdout, synthetic))
    metrics = {
        "fidelity_kid": kernel_distance(f_syn, f_train, seed=seed),
        "fidelity_kid_real_reference": kernel_distance(f_hold, f_train, seed=seed),
    }
    probas, reference = ([predict_proba(m, s.images) for m in checkers] for s in (synthetic, holdout))
    metrics.update(label_agreement(ensemble_vote(probas), synthetic.labels, train.class_names,
                                   ensemble_vote(reference), holdout.labels))
    metrics.update(label_separation(probas, synthetic.labels, train.class_names, reference, holdout.labels))
    metrics.update(class_fidelity(f_train, train.labels, f_hold, holdout.labels, f_syn, synthetic.labels,
                                  train.class_names, seed=seed))
    return metrics, f_train, f_hold, f_syn


def evaluate_images(train: ImageSet, holdout: ImageSet, synthetic: ImageSet, seed: int = 0,
                    seeds: int = 5) -> ImageEvaluation:
    n_classes = len(train.class_names)
    progress.update("evaluate", 0, 3, family="fidelity")
    metrics, f_train, f_hold, f_syn = image_fidelity(train, holdout, synthetic, label_checkers(train, seed=seed), seed)
    progress.update("evaluate", 1, 3, family="utility")
    metrics.update(image_utility(train, holdout, synthetic, n_classes, seed, seeds))
    progress.update("evaluate", 2, 3, family="privacy")
    privacy, pairs, distances, roc = _image_privacy(train, holdout, synthetic, f_train, f_hold, f_syn, seed)
    metrics.update(privacy)
    progress.update("evaluate", 3, 3, family="done")
    return ImageEvaluation(metrics, pairs, distances, roc)


def _auc(proba: np.ndarray, labels: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return float(roc_auc_score(labels, proba[:, 1]))
    return float(roc_auc_score(labels, proba, multi_class="ovr"))


def image_utility(train, holdout, synthetic, n_classes, seed, seeds) -> dict[str, float]:
    """CNN holdout AUC and accuracy of every arm of `ARMS`, mean and std over `seeds` seeds. The
    headline lift is the best arm with synthetic images (real + synthetic, any augmentation)
    against the best arm without them, per seed, with its 95 % interval."""
    sets = {"real": (train.images, train.labels),
            "augmented": (np.concatenate([train.images, synthetic.images]),
                          np.concatenate([train.labels, synthetic.labels])),
            "synthetic": (synthetic.images, synthetic.labels)}
    arms = {name: arm for name, arm in ARMS.items()
            if arm[0] != "synthetic" or len(np.unique(synthetic.labels)) > 1}
    steps = UTILITY_EPOCHS * math.ceil(len(train) / BATCH)
    results = {name: {"auc": [], "accuracy": []} for name in arms}
    for s in range(seed, seed + seeds):
        for name, (images, augmentation, weighted) in arms.items():
            x, y = sets[images]
            model = train_classifier(x, y, n_classes, seed=s, steps=steps, augmentation=augmentation,
                                     class_weighted=weighted, cosine=True)
            proba = predict_proba(model, holdout.images)
            results[name]["auc"].append(_auc(proba, holdout.labels))
            results[name]["accuracy"].append(float((proba.argmax(1) == holdout.labels).mean()))
    out = {"utility_cnn_steps": steps}
    for name, values in results.items():
        for measure, numbers in values.items():
            out[f"utility_cnn_{name}_{measure}"] = float(np.mean(numbers))
            out[f"utility_cnn_{name}_{measure}_std"] = float(np.std(numbers))
    with_synthetic, without = best_arms(out)
    lift = np.array(results[with_synthetic]["auc"]) - np.array(results[without]["auc"])
    out["utility_cnn_lift"], out["utility_cnn_lift_std"] = float(lift.mean()), float(lift.std())
    out["utility_cnn_lift_low"], out["utility_cnn_lift_high"] = lift_interval(lift)
    return out


def best_arms(metrics: dict[str, float]) -> tuple[str, str]:
    """The arm with synthetic images (real + synthetic) and the arm without them with the highest
    mean holdout AUC: what the headline lift compares."""
    def best(prefix: str) -> str:
        names = [n for n in ARMS if n.startswith(prefix) and f"utility_cnn_{n}_auc" in metrics]
        return max(names, key=lambda n: metrics[f"utility_cnn_{n}_auc"])
    return best("augmented"), best("real")


def _image_privacy(train, holdout, synthetic, f_train, f_hold, f_syn, seed):
    pix = {name: s.images.reshape(len(s), -1).astype(np.float64) for name, s in
           (("train", train), ("holdout", holdout), ("synthetic", synthetic))}
    out, distances = {}, {}
    for space, (a_train, a_hold, a_syn) in {"pixel": (pix["train"], pix["holdout"], pix["synthetic"]),
                                           "feature": (f_train, f_hold, f_syn)}.items():
        index = NearestNeighbors(n_neighbors=1).fit(a_train)
        syn_train, syn_idx = index.kneighbors(a_syn)
        hold_train, _ = index.kneighbors(a_hold)
        syn_hold, syn_hold_idx = NearestNeighbors(n_neighbors=1).fit(a_hold).kneighbors(a_syn)
        near, near_pvalue = near_copy_test(syn_train[:, 0], hold_train[:, 0], NEAR_PERCENTILE)
        out[f"privacy_{space}_near_rate"] = near
        out[f"privacy_{space}_near_ratio_to_chance"] = near / (NEAR_PERCENTILE / 100)
        distances[f"{space}_synthetic_to_train"], distances[f"{space}_holdout_to_train"] = syn_train[:, 0], hold_train[:, 0]
        if space == "pixel":
            order = np.argsort(syn_train[:, 0])[:8]
            pairs = [(int(i), int(syn_idx[i, 0]), float(syn_train[i, 0])) for i in order]
            copies = int((syn_train[:, 0] == 0).sum())
            # real images equal to a training image: holdout ones, and training ones equal to another
            reference = int((hold_train[:, 0] == 0).sum()) + int((index.kneighbors(a_train, 2)[0][:, 1] == 0).sum())
            out["privacy_exact_copies"] = copies
            out["privacy_exact_copy_real_rate"] = reference / (len(a_train) + len(a_hold))
            out["privacy_exact_copy_pvalue"] = exact_copy_test(copies, len(a_syn), reference,
                                                               len(a_train) + len(a_hold))
        else:
            out["privacy_near_copy_ratio_to_chance"] = near / (NEAR_PERCENTILE / 100)
            out["privacy_near_copy_pvalue"] = near_pvalue
            closer = (syn_train[:, 0] < syn_hold[:, 0]) + 0.5 * (syn_train[:, 0] == syn_hold[:, 0])
            out["privacy_dcr_closer_to_train_share"] = float(closer.mean())
            out["privacy_dcr_expected_share"] = len(a_train) / (len(a_train) + len(a_hold))
            out.update(dcr_test(syn_train[:, 0], syn_hold[:, 0], syn_idx[:, 0], syn_hold_idx[:, 0],
                                len(a_train), len(a_hold), seed=seed))
    rng = np.random.default_rng(seed)
    members = rng.choice(len(f_train), min(len(f_train), len(f_hold)), replace=False)
    attack = np.vstack([f_train[members], f_hold])
    labels = np.r_[np.ones(len(members)), np.zeros(len(f_hold))]
    score = -NearestNeighbors(n_neighbors=1).fit(f_syn).kneighbors(attack)[0][:, 0]
    out["privacy_mia_distance_auc"] = float(roc_auc_score(labels, score))
    out.update(strongest_attack({"distance": (out["privacy_mia_distance_auc"], labels, score)}, seed=seed))
    return out, pairs, distances, {"distance (feature space)": (labels, score)}
