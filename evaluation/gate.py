"""The publish gate: privacy is a hard rule, fidelity and utility are optional limits.

Each threshold's reason is in `params.yaml` next to its value and in the README.
A check whose metric is absent (e.g. utility without a target) is skipped, not passed silently:
it is listed under `skipped`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict


class GateThresholds(BaseModel):
    """The gate's limits: a request's `gate` field and `params.yaml`'s `evaluate.gate` (None: off)."""

    model_config = ConfigDict(extra="forbid")
    min_exact_copy_pvalue: float = 0.0025
    max_exact_copies: int | None = None
    min_near_copy_pvalue: float = 0.0025
    min_dcr_pvalue: float = 0.0025
    max_membership_auc: float | None = 0.6
    min_membership_pvalue: float = 0.0025
    min_label_agreement: float | None = 0.8
    max_detection_auc: float | None = None
    min_utility_lift: float | None = None


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# (threshold field, metric, comparison, plain-language reason)
CHECKS = (
    ("min_exact_copy_pvalue", "privacy_exact_copy_pvalue", "min",
     "synthetic rows are exact copies of training rows more often than real records duplicate each other "
     "(p = {value:.2g} < {limit:.2g})"),
    ("max_exact_copies", "privacy_exact_copies", "max",
     "{value:.0f} synthetic rows are exact copies of training rows (allowed: {limit:.0f})"),
    ("min_near_copy_pvalue", "privacy_near_copy_pvalue", "min",
     "near copies of training rows are more frequent than among real holdout rows (p = {value:.2g} < {limit:.2g})"),
    ("min_dcr_pvalue", "privacy_dcr_pvalue", "min",
     "synthetic rows sit closer to training rows than to holdout rows more than chance allows "
     "(p = {value:.2g} < {limit:.2g})"),
    ("max_membership_auc", "privacy_mia_auc", "max",
     "a membership-inference attack tells training rows from holdout rows (AUC {value:.3f} > {limit:.3f}, "
     "permutation p = {pvalue:.2g})"),
    ("min_label_agreement", "fidelity_label_agreement_relative_min", "min",
     "classifiers trained on the real images assign only {value:.0%} as many of the synthetic images of some "
     "class to that class as of the real holdout images of that class (required: {limit:.0%}): mislabelled "
     "images would poison a training set; a generator of another seed may pass (`candidates: 2` trains two "
     "and publishes a draw of one the gate passes)"),
    ("max_detection_auc", "fidelity_detection_auc", "max",
     "a classifier tells synthetic from real rows too easily (AUC {value:.3f} > {limit:.3f})"),
    ("min_utility_lift", "utility_gbm_lift", "min",
     "adding synthetic rows changes holdout AUC by {value:+.3f} (required: at least {limit:+.3f})"),
)


# A check that applies only to one kind of data: skipped without a note where this metric is absent
APPLIES_WHEN = {"min_label_agreement": "fidelity_kid"}  # images
# A check that fails only when its effect is also significant: (p-value metric, threshold field).
# An attack AUC of 0.62 on 40 holdout rows is noise; the same AUC on 3,000 rows is a leak.
SIGNIFICANCE = {"max_membership_auc": ("privacy_mia_pvalue", "min_membership_pvalue")}


def apply_gate(metrics: dict[str, float], thresholds: GateThresholds) -> GateResult:
    result = GateResult(passed=True)
    for field_name, metric, direction, message in CHECKS:
        limit = getattr(thresholds, field_name)
        if limit is None:
            continue
        value = metrics.get(metric)
        if field_name in APPLIES_WHEN and APPLIES_WHEN[field_name] not in metrics:
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            result.skipped.append(f"{field_name}: {metric} not computed")
            continue
        failed = value > limit if direction == "max" else value < limit
        pvalue = float("nan")
        if field_name in SIGNIFICANCE:
            pvalue_metric, alpha_field = SIGNIFICANCE[field_name]
            pvalue = metrics.get(pvalue_metric, 0.0)  # not computed: the effect alone decides
            failed = failed and pvalue < getattr(thresholds, alpha_field)
        if failed:
            result.passed = False
            result.reasons.append(message.format(value=value, limit=limit, pvalue=pvalue))
    return result
