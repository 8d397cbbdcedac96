"""One self-contained HTML report per run: verdict first, then fidelity, utility, privacy.

Figures are embedded as base64 PNG and there is no script or external asset, so the page
opens offline, in a browser or as an MLflow artifact.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from jinja2 import Environment

DEFINITIONS = {
    "fidelity_column_shapes": "Mean over columns of 1 − KS statistic (numbers) or 1 − total variation distance (categories), synthetic vs real train. 1 = identical marginals.",
    "fidelity_pair_trends": "SDMetrics' Column Pair Trends: 1 − |Δ Pearson r|/2 (number pairs) or contingency similarity (other pairs), averaged over the pairs SDMetrics finds related in the real data.",
    "fidelity_pair_trends_all_pairs": "The same pair scores averaged over every pair (numbers in deciles for mixed pairs); reads 0.02–0.13 higher than SDMetrics' average on small tables.",
    "fidelity_quality": "SDMetrics' QualityReport score, computed by the package itself (up to 5,000 rows a side): mean of column shapes and column pair trends.",
    "fidelity_detection_auc": "Cross-validated AUC of a gradient-boosting classifier telling synthetic from real training rows. 0.5 = indistinguishable, 1 = trivially told apart. Far below 0.5 is a warning too: synthetic rows that are near-twins of real rows land in the other fold with the opposite label.",
    "fidelity_boundary_adherence": "Share of synthetic numbers inside the real [min, max] of their column.",
    "fidelity_category_adherence": "Share of synthetic categories that occur in the real column.",
    "privacy_exact_copies": "Synthetic rows identical to a training row in every published column.",
    "privacy_exact_copy_real_rate": "How often a real record equals a training record (holdout rows equal to one, training rows equal to another): real tables hold duplicates.",
    "privacy_exact_copy_pvalue": "Posterior predictive p-value of that many exact copies if synthetic rows copied training rows no more often than real records duplicate each other. Small = copying.",
    "privacy_near_copy_ratio_to_chance": "Share of synthetic rows closer to a training row than the closest 1 % of holdout rows are, divided by that 1 %.",
    "privacy_near_copy_pvalue": "Exact test (negative hypergeometric) of that many near copies if synthetic and holdout rows were exchangeable; it allows for the threshold itself coming from few holdout rows. Small = more near copies than real data shows.",
    "privacy_dcr_closer_to_train_share": "Share of synthetic rows whose nearest real row is a training row rather than a holdout row.",
    "privacy_dcr_expected_share": "That share for an independent sample: n_train / (n_train + n_holdout).",
    "privacy_dcr_hit_records": "Distinct real records that some synthetic row is nearest to; few = the generator collapsed onto few points.",
    "privacy_dcr_hit_train_share": "Share of those records that are training records.",
    "privacy_dcr_pvalue": "Permutation test of the rows landing on training records, holding fixed which records rows land on and how many on each. Small = rows land beside training records more than the split explains.",
    "privacy_nndr_mean": "Mean ratio of the nearest to the second-nearest training distance of synthetic rows; near 0 = rows sit on top of single training rows.",
    "privacy_mia_distance_auc": "Membership inference: AUC of guessing 'training row' for real rows close to some synthetic row (training vs holdout rows). 0.5 = no signal.",
    "privacy_mia_density_auc": "Membership inference (DOMIAS-style): AUC of the synthetic-to-population density ratio, population density fitted on half the holdout.",
    "privacy_mia_auc": "The stronger of the two membership-inference attacks; the gate reads this one, with privacy_mia_auc_low / _high its 95 % interval (Hanley & McNeil).",
    "privacy_mia_pvalue": "Permutation p-value of the attacks' AUCs (labels shuffled 2,000 times), Bonferroni over the attacks. The gate rejects an AUC above its limit only when this is small: 0.62 on 40 holdout rows is noise.",
    "privacy_attribute_advantage": "Attribute inference on a sensitive column: attacker knows the other columns and reads the nearest synthetic row; accuracy on training rows minus accuracy on holdout rows (numbers: reduction of mean absolute error, in standard deviations). About 0 when nothing leaks.",
    "utility": "Holdout AUC of a classifier trained on real train, on synthetic only, on real + synthetic (augmented), and on real + the same number of SMOTE rows; mean ± std over 5 bootstrap seeds. Lift = augmented − real, with the 95 % Student-t interval of its mean (utility_*_lift_low / _high): one that covers 0 is no detectable lift.",
    "fidelity_fid": "Fréchet distance between the synthetic images of a class and the real training images of that class, in the feature space of a small CNN trained on the real training split (no Inception weights offline), with the synthetic images drawn at the size of that class in the holdout; per class (fidelity_fid_<class>) and, unsuffixed, for the class with the lowest coverage. Compare with fidelity_fid_real_reference: the same distance between the real holdout images of that class and its real training images.",
    "fidelity_kid": "Kernel (MMD², cubic polynomial kernel) distance between all synthetic and all real training images in the same feature space; compare with fidelity_kid_real_reference.",
    "fidelity_precision": "Precision / recall / density / coverage (Naeem et al. 2020), k = 5 nearest-neighbour balls in the feature space, of each published class against the real training images of that class, the synthetic images drawn at that class's holdout size (mean of 5 draws); _real_reference: the real holdout images of that class scored the same way (the ceiling). Unsuffixed: the class with the lowest coverage. A generator's coverage falls as the class's training images grow in number at the same ratio of scored images to them (each image's neighbourhood shrinks) while real images' does not, so compare coverage only between runs on the same training images.",
    "fidelity_label_separation": "The same five CNNs without a decision threshold: per published class, each CNN's AUC of its probability of that class for the synthetic images against the real holdout images of the other classes, averaged over the five (fidelity_label_separation_<class>); _real_reference_<class>: the same for the real holdout images of that class; _relative_<class>: (AUC − 0.5) of the synthetic images over that of the real ones (at most 1), and its lowest (_relative_min). One CNN's share of a class can swing from 5 % to 95 % with its seed where its AUC barely moves, so this says whether images that fall short of the gate's share are of the other class (near 0) or only a little less typical of their own (near 1). Reported, not gated.",
    "fidelity_label_agreement": "Share of synthetic images that five CNNs trained on the real images (probabilities averaged) assign to the class they were generated for; per class (fidelity_label_agreement_<class>) and the lowest of those (_min). _real_reference_<class>: the share of real holdout images of that class the same CNNs assign to it; _relative_<class>: the first divided by the second (at most 1). The gate requires the lowest relative share (_relative_min) to be at least min_label_agreement (0.8).",
    "privacy_pixel_near": "Share of synthetic images closer (pixel L2) to a training image than 95 % of holdout images are; chance is 5 %. privacy_feature_near_*: the same in CNN feature space (the gate's near-copy test uses the feature space).",
    "fidelity_translation_cycle_error": "Translated images: mean absolute difference (0-255) between each source image and its round trip source → target → source (cycle consistency; small = the translation keeps the image's content).",
    "privacy_translation": "Translated images: each is made from one real training image, so it stays close to it by design. _source_rmse: mean pixel RMSE (0-255) to its own source; _other_rmse: to the nearest other training image; _nearer_source: share nearer its own source than any other. This engine is refused for private and synthetic-only requests.",
    "data_train_holdout": "Exact and near (RMSE < 2 on 0-255) duplicate images between the real training and holdout splits, and how many carry conflicting labels: they make held-out scores look better than they are.",
    "utility_cnn": "Holdout AUC and accuracy of the small CNN, mean ± std over 5 seeds, in arms a team would try: real images only; real with classical augmentation (flips, ±15° rotations, ±2 px shifts, padded random crops); that with a class-weighted loss; the same three with the synthetic images added; synthetic only. Every arm trains for the same number of optimiser steps (utility_cnn_steps: enough passes over the real training images' batches for the real-only CNN to converge), its learning rate decayed to zero on a cosine, so no arm is compared half-trained. Lift = the best arm with synthetic images minus the best arm without them, per seed, with the 95 % interval of its mean (both picked by mean holdout AUC, so both sides share the same optimism). The seeds are the CNN's, not the generator's: another training of the same generator can move the lift by more (on halves of BreastMNIST, four trainings of the GAN lifted -0.025 to +0.021 while the CNN seeds' standard deviation was about 0.012; new real images of the rare class, +0.003 on average: benchmarks/HISTORY.md, session 35).",
    "privacy_dp_epsilon": "Differential-privacy budget spent (at privacy_dp_delta): DP-SGD on the discriminator plus the Laplace-noised category frequencies. Smaller is more private. Not covered: column metadata (category lists, value ranges and mixture modes), fitted without noise.",
    "privacy_dp_nonprivate": "Holdout AUC of the same classifiers trained on rows from a non-private twin generator (same data and settings, never published).",
    "privacy_dp_utility_cost": "What privacy cost: the non-private twin's holdout AUC minus this run's (positive = the private data is less useful).",
}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>synthaug report: {{ name }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.verdict{padding:1em 1.2em;border-radius:6px;font-size:1.1em}
.published{background:#e6f4ea;border:1px solid #34a853}.rejected{background:#fce8e6;border:1px solid #d93025}
table{border-collapse:collapse;margin:0.6em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:0.92em}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:0.5em}figure img{max-width:100%;border:1px solid #eee}
.defs dt{font-weight:600;margin-top:0.4em}.defs dd{margin-left:1em}small{color:#666}
</style></head><body>
<h1>synthaug report: {{ name }}</h1>
<section id="verdict" class="verdict {{ status }}"><strong>{{ status|upper }}</strong>
{% if reasons %}<ul>{% for r in reasons %}<li>{{ r }}</li>{% endfor %}</ul>{% else %}: every privacy check of the publish gate passed.{% endif %}
<ul class="plain">{% for line in verdict_lines[1:] %}<li>{{ line }}</li>{% endfor %}</ul>
{% if skipped %}<p><small>Not checked: {{ skipped|join('; ') }}</small></p>{% endif %}
<p><small>{{ rows.real_train }} real training rows, {{ rows.holdout }} holdout rows (never seen by the generator), {{ rows.synthetic }} synthetic rows{% if rows.synthetic_scored is defined and rows.synthetic_scored < rows.synthetic %} (every score uses a seeded random subsample of {{ rows.synthetic_scored }} of them){% endif %}.</small></p>
</section>
<section id="utility"><h2>Utility</h2><p>{{ utility_sentence }}</p>{{ utility_table }}</section>
<section id="fidelity"><h2>Fidelity</h2>{{ fidelity_table }}{% for f in fidelity_figures %}<figure><img alt="{{ f.name }}" src="data:image/png;base64,{{ f.data }}"><figcaption>{{ f.name }}</figcaption></figure>{% endfor %}</section>
<section id="privacy"><h2>Privacy</h2>{% if dp_sentence %}<p>{{ dp_sentence }}</p>{% endif %}{{ privacy_table }}{% for f in privacy_figures %}<figure><img alt="{{ f.name }}" src="data:image/png;base64,{{ f.data }}"><figcaption>{{ f.name }}</figcaption></figure>{% endfor %}</section>
{% if other_figures %}<section id="training"><h2>Training and samples</h2>{% for f in other_figures %}<figure><img alt="{{ f.name }}" src="data:image/png;base64,{{ f.data }}"><figcaption>{{ f.name }}</figcaption></figure>{% endfor %}</section>{% endif %}
<section id="definitions"><h2>Definitions</h2><dl class="defs">{% for k, v in definitions %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl></section>
</body></html>
"""

FIDELITY_FIGURES = ("marginals", "correlation_difference", "detection_roc")
PRIVACY_FIGURES = ("dcr", "membership_roc", "nearest_pairs")


def _metric_table(metrics: dict, prefix: str) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td></tr>"
                   for k, v in sorted(metrics.items()) if k.startswith(prefix) and not k.endswith("_std"))
    return f"<table><tr><th>score</th><th>value</th></tr>{rows}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def table_utility_table(metrics: dict) -> str:
    """One row per utility model: holdout AUC trained on real, synthetic, augmented and SMOTE rows."""
    models = sorted({k.split("_")[1] for k in metrics if k.startswith("utility_") and k.endswith("_real_auc")})
    sets = ("real", "synthetic", "augmented", "smote")
    head = "".join(f"<th>{s}</th>" for s in sets)
    body = ""
    for model in models:
        cells = ""
        for s in sets:
            mean, std = metrics.get(f"utility_{model}_{s}_auc"), metrics.get(f"utility_{model}_{s}_auc_std")
            cells += f"<td class='num'>{mean:.3f} ± {std:.3f}</td>" if mean is not None else "<td>n/a</td>"
        body += f"<tr><td>{model}</td>{cells}</tr>"
    return f"<table><tr><th>holdout AUC, trained on →</th>{head}</tr>{body}</table>" if models else "<p>No target column: utility not scored.</p>"


def image_utility_table(metrics: dict) -> str:
    """One row per image utility arm: holdout AUC and accuracy, mean ± std over the seeds."""
    from evaluation.images import ARMS

    body = ""
    for arm in ARMS:
        if f"utility_cnn_{arm}_auc" not in metrics:
            continue
        cells = "".join(f"<td class='num'>{metrics[f'utility_cnn_{arm}_{m}']:.3f} ± "
                        f"{metrics[f'utility_cnn_{arm}_{m}_std']:.3f}</td>" for m in ("auc", "accuracy"))
        body += f"<tr><td>{arm.replace('_', ' + ').replace('augmented', 'real + synthetic')}</td>{cells}</tr>"
    return f"<table><tr><th>CNN trained on</th><th>holdout AUC</th><th>accuracy</th></tr>{body}</table>"


def cnn_utility_sentence(metrics: dict) -> str:
    """Whether the synthetic images beat the best alternative without them, by how much, and whether
    that exceeds the seeds' spread."""
    from evaluation.images import best_arms

    with_synthetic, without = best_arms(metrics)
    lift, std = metrics["utility_cnn_lift"], metrics["utility_cnn_lift_std"]
    low, high = metrics.get("utility_cnn_lift_low"), metrics.get("utility_cnn_lift_high")
    spread = max(metrics[f"utility_cnn_{with_synthetic}_auc_std"], metrics[f"utility_cnn_{without}_auc_std"])
    if low is not None and low == low and low > 0 and lift > spread:
        verdict = f"beat the best alternative by {lift:+.3f} holdout AUC, more than the seeds' spread ({spread:.3f})"
    elif low is not None and low == low and high < 0:
        verdict = f"did worse than the best alternative ({lift:+.3f} holdout AUC)"
    else:
        verdict = (f"did not beat the best alternative beyond noise ({lift:+.3f} holdout AUC; the seeds' spread is "
                   f"{spread:.3f})")
    name = {a: a.replace("_", " + ").replace("augmented", "real + synthetic") for a in (with_synthetic, without)}
    interval = f", 95 % interval {low:+.3f} to {high:+.3f}" if low is not None and low == low else ""
    return (f"The synthetic images {verdict}: best arm with them {name[with_synthetic]} "
            f"{metrics[f'utility_cnn_{with_synthetic}_auc']:.3f} ± {metrics[f'utility_cnn_{with_synthetic}_auc_std']:.3f}, "
            f"best without {name[without]} {metrics[f'utility_cnn_{without}_auc']:.3f} ± "
            f"{metrics[f'utility_cnn_{without}_auc_std']:.3f} (std {std:.3f} over seeds{interval}).")


def utility_sentence(metrics: dict) -> str:
    """Plain words on whether the synthetic rows helped: the lift's 95 % interval over the repeats
    decides ("no detectable lift" when it covers 0), then the comparison with SMOTE."""
    parts = []
    for model in ("gbm", "logistic"):
        lift, low, high = (metrics.get(f"utility_{model}_lift{s}") for s in ("", "_low", "_high"))
        if lift is None:
            continue
        if low is None or low != low:
            verdict = "changed"
        elif low <= 0 <= high:
            verdict = "made no detectable change to"
        else:
            verdict = "raised" if lift > 0 else "lowered"
        interval = f"95 % interval {low:+.3f} to {high:+.3f}" if low == low and low is not None else "one repeat"
        text = f"Adding the synthetic rows {verdict} the {model} model's holdout AUC ({lift:+.3f}, {interval})"
        smote, smote_std = metrics.get(f"utility_{model}_smote_lift"), metrics.get(f"utility_{model}_smote_lift_std")
        std = metrics.get(f"utility_{model}_lift_std") or 0
        if smote is not None:
            margin = 2 * max(std, smote_std or 0, 0.0025)
            comparison = ("beat SMOTE" if lift - smote > margin else
                          "did worse than SMOTE" if smote - lift > margin else "was no different from SMOTE")
            text += f"; SMOTE with as many rows: {smote:+.3f} ± {smote_std:.3f}, so the GAN {comparison}"
        parts.append(text + ".")
    return " ".join(parts) or "No target column: utility not scored."


def fidelity_sentence(metrics: dict) -> str:
    """How easily the synthetic rows are told from real ones, in words, for the verdict."""
    auc = metrics.get("fidelity_detection_auc")
    quality = metrics.get("fidelity_quality")
    if auc is None or auc != auc:
        return ""
    if auc >= 0.95:
        head = (f"A classifier tells these synthetic rows from real ones almost perfectly (detection AUC "
                f"{auc:.2f}; 0.5 = indistinguishable): they are easy to spot.")
    elif auc >= 0.75:
        head = f"A classifier tells these synthetic rows from real ones fairly easily (detection AUC {auc:.2f})."
    else:
        head = f"A classifier has difficulty telling these synthetic rows from real ones (detection AUC {auc:.2f})."
    return head + (f" SDMetrics quality {quality:.2f}." if quality is not None else "")


def image_fidelity_sentence(metrics: dict) -> str:
    """Whether the synthetic images carry their class and how much of it they cover, against real holdout images."""
    fid, reference = metrics.get("fidelity_fid"), metrics.get("fidelity_fid_real_reference")
    if fid is not None and reference:
        return (f"classifiers trained on the real images assign {metrics['fidelity_label_agreement_min']:.0%} of "
                f"the synthetic images of the worst class to their class, "
                f"{metrics['fidelity_label_agreement_relative_min']:.0%} of the share of real holdout images they "
                f"assign to theirs"
                + (f" (ranked against real images of the other classes, without a threshold: "
                   f"{metrics['fidelity_label_separation_relative_min']:.0%} of the real images' separation)"
                   if "fidelity_label_separation_relative_min" in metrics else "")
                + f". Against the real training images of "
                f"their own class (the class with the lowest coverage): recall {metrics['fidelity_recall']:.2f} "
                f"and coverage {metrics['fidelity_coverage']:.2f}, where real holdout images of that class reach "
                f"{metrics['fidelity_recall_real_reference']:.2f} and {metrics['fidelity_coverage_real_reference']:.2f}; "
                f"Fréchet distance {fid:.3g}, {fid / reference:.1f}× the real holdout's ({reference:.3g}).")
    return ""


@dataclass(frozen=True)
class Voice:
    """How the report words one kind of data's scores (the rest of the report is the same for every kind)."""

    fidelity: Callable[[dict], str]
    utility: Callable[[dict], str]
    utility_table: Callable[[dict], str]


TABLES = Voice(fidelity_sentence, utility_sentence, table_utility_table)
IMAGES = Voice(image_fidelity_sentence, cnn_utility_sentence, image_utility_table)


def verdict(scores: dict, voice: Voice = TABLES) -> list[str]:
    """The three plain sentences a reviewer reads first: privacy (the gate), fidelity, utility.
    The report's top and the MLflow run's description carry the same text."""
    gate = scores["gate"]
    privacy = ("Privacy: every check of the publish gate passed." if gate["passed"] else
               "Privacy: rejected by the publish gate: " + "; ".join(gate["reasons"]) + ".")
    return [privacy, "Fidelity: " + (voice.fidelity(scores["metrics"]) or "not scored."),
            "Utility: " + voice.utility(scores["metrics"])]


def dp_sentence(metrics: dict) -> str:
    """The privacy budget and its price in one sentence, or nothing for a non-private run."""
    if "privacy_dp_epsilon" not in metrics:
        return ""
    text = (f"Trained with differential privacy: ε = {metrics['privacy_dp_epsilon']:.2f} spent "
            f"at δ = {metrics['privacy_dp_delta']:.0e}.")
    for name in ("gbm_augmented", "gbm_synthetic"):
        cost = metrics.get(f"privacy_dp_utility_cost_{name}")
        if cost is not None:
            text += (f" Utility cost ({name.replace('_', ', ')}): holdout AUC {metrics[f'utility_{name}_auc']:.3f} "
                     f"against {metrics[f'privacy_dp_nonprivate_{name}_auc']:.3f} for the same generator trained "
                     f"without privacy (cost {cost:+.3f}).")
    return text


def _figures(figures_dir: Path, names) -> list[dict]:
    out = []
    for name in names:
        path = figures_dir / f"{name}.png"
        if path.exists():
            out.append({"name": name.replace("_", " "), "data": base64.b64encode(path.read_bytes()).decode()})
    return out


def render_report(name: str, scores: dict, figures_dir: Path, voice: Voice = TABLES) -> str:
    """`scores` is the evaluate stage's metrics.json: metrics, gate and rows."""
    metrics, gate = scores["metrics"], scores["gate"]
    known = set(FIDELITY_FIGURES) | set(PRIVACY_FIGURES)
    others = sorted(p.stem for p in figures_dir.glob("*.png") if p.stem not in known)
    definitions = [(k, v) for k, v in DEFINITIONS.items()
                   if any(m.startswith(k) for m in metrics) or k == "utility" and "utility_gbm_real_auc" in metrics]
    return Environment(autoescape=True).from_string(TEMPLATE).render(
        name=name, status="published" if gate["passed"] else "rejected", reasons=gate["reasons"],
        skipped=gate.get("skipped", []), rows=scores["rows"],
        utility_sentence=voice.utility(metrics), dp_sentence=dp_sentence(metrics), verdict_lines=verdict(scores, voice),
        utility_table=_markup(voice.utility_table(metrics)),
        fidelity_table=_markup(_metric_table(metrics, "fidelity_")),
        privacy_table=_markup(_metric_table(metrics, "privacy_")),
        fidelity_figures=_figures(figures_dir, FIDELITY_FIGURES),
        privacy_figures=_figures(figures_dir, PRIVACY_FIGURES),
        other_figures=_figures(figures_dir, others), definitions=definitions)


def _markup(text: str):
    from markupsafe import Markup

    return Markup(text)
