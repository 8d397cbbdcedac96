"""Scores and the publish gate on cases whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.fidelity import column_shapes
from evaluation.gate import GateThresholds, apply_gate
from evaluation.scores import evaluate_tabular
from synth.generators import CTGANGenerator
from synth.schema import apply_schema, infer_schema
from synth.tables import split_train_holdout
from synth.simulated import simulated_admissions
from tests.conftest import SHARED_DATA


def three_way(table: pd.DataFrame, target: str):
    """Disjoint train, holdout and a third real sample: what a perfect generator would produce."""
    train, rest = split_train_holdout(table, target, 0.5, seed=0)
    holdout, third = split_train_holdout(rest, target, 0.5, seed=0)
    return train, holdout, third


def noisy_copy(train: pd.DataFrame, kinds: dict, scale: float = 0.01, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = train.copy()
    for column, kind in kinds.items():
        if kind == "numeric":
            values = out[column].astype(float)
            out[column] = values + rng.normal(0, scale * values.std(), len(values))
    return out


SHARED_TABLES = {"indian_liver_patient": "Liver_Disease", "kidney_disease": "classification",
                 "maternal_health_risk": "RiskLevel"}


def shared_table(name: str) -> pd.DataFrame:
    path = SHARED_DATA / "tables" / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"{path} is not here (../shared/data/tables)")
    return pd.read_csv(path, encoding="utf-8-sig")


TABLES = {
    "breast_cancer": ("diagnosis", lambda bc: bc),
    "clinic": ("outcome", lambda bc: simulated_admissions(2000, seed=5)),
    **{name: (target, lambda bc, name=name: shared_table(name)) for name, target in SHARED_TABLES.items()},
}


def as_loaded(table: pd.DataFrame, target: str) -> tuple[pd.DataFrame, dict]:
    """The table as a request loads it (identifiers dropped, numbers written as text parsed)."""
    schema = infer_schema(table, target=target)
    return apply_schema(table, schema), {c: k for c, k in schema.kinds.items() if k != "id"}


@pytest.mark.parametrize("table_name", TABLES)
def test_gate_passes_a_fresh_real_sample_and_rejects_a_noisy_copy(breast_cancer, table_name):
    target, build = TABLES[table_name]
    table, kinds = as_loaded(build(breast_cancer), target)
    train, holdout, third = three_way(table, target)

    fresh = evaluate_tabular(train, holdout, third, kinds, target).metrics
    fresh_gate = apply_gate(fresh, GateThresholds())
    assert fresh_gate.passed, fresh_gate.reasons
    assert 0.3 < fresh["fidelity_detection_auc"] < 0.7  # a real sample is indistinguishable
    assert fresh["privacy_mia_auc_low"] < 0.5 < fresh["privacy_mia_auc_high"]

    copied = evaluate_tabular(train, holdout, noisy_copy(train, kinds), kinds, target).metrics
    assert copied["fidelity_quality"] > 0.85  # fidelity alone would pass the copy...
    copy_gate = apply_gate(copied, GateThresholds())
    assert not copy_gate.passed  # ...the holdout-based privacy checks do not
    assert any("membership-inference attack" in r for r in copy_gate.reasons)
    if table_name in ("breast_cancer", "clinic"):  # no duplicate records: every distance test sees it
        assert any("near copies" in r for r in copy_gate.reasons)
        assert any("closer to training rows than to holdout" in r for r in copy_gate.reasons)
        assert copied["privacy_near_copy_ratio_to_chance"] > 20
        assert copied["privacy_mia_distance_auc"] > 0.9


@pytest.mark.parametrize("table_name", TABLES)
def test_gate_passes_a_fresh_real_sample_of_a_200_row_table(breast_cancer, table_name):
    """About 100 training and 50 holdout rows: the tests must allow for the noise of so few rows
    (a fixed membership AUC limit and a binomial near-copy test rejected real data here)."""
    target, build = TABLES[table_name]
    table, kinds = as_loaded(build(breast_cancer).sample(200, random_state=0), target)
    train, holdout, third = three_way(table, target)
    gate = apply_gate(evaluate_tabular(train, holdout, third, kinds, target).metrics, GateThresholds())
    assert gate.passed, gate.reasons


def test_partial_copying_is_caught_by_the_near_copy_test(breast_cancer):
    """10 % noisy copies among fresh rows: too few to move the DCR share or the attacks much."""
    kinds = infer_schema(breast_cancer, target="diagnosis").kinds
    train, holdout, third = three_way(breast_cancer, "diagnosis")
    mixed = pd.concat([third.iloc[: len(third) - 14], noisy_copy(train, kinds).head(14)], ignore_index=True)
    metrics = evaluate_tabular(train, holdout, mixed, kinds, "diagnosis").metrics
    gate = apply_gate(metrics, GateThresholds())
    assert any("near copies" in r for r in gate.reasons), metrics


def test_attribute_inference_sees_a_copy_and_not_a_fresh_sample():
    table = simulated_admissions(2000, seed=6)
    kinds = infer_schema(table, target="outcome").kinds
    train, holdout, third = three_way(table, "outcome")
    sensitive = ["smoker", "bmi"]
    fresh = evaluate_tabular(train, holdout, third, kinds, "outcome", sensitive=sensitive).metrics
    copied = evaluate_tabular(train, holdout, noisy_copy(train, kinds), kinds, "outcome", sensitive=sensitive).metrics
    for column in sensitive:
        assert abs(fresh[f"privacy_attribute_advantage_{column}"]) < 0.1
        assert copied[f"privacy_attribute_advantage_{column}"] > 0.2


def test_exact_copies_are_judged_against_the_real_duplicate_rate(breast_cancer):
    """Breast cancer has no duplicate records: 10 copied training rows are a disclosure the calibrated
    test sees; 3 are flagged only by the strict rule (`max_exact_copies: 0`)."""
    kinds = infer_schema(breast_cancer, target="diagnosis").kinds
    train, holdout, third = three_way(breast_cancer, "diagnosis")
    for n, calibrated_rejects in ((10, True), (3, False)):
        synthetic = pd.concat([third, train.head(n)], ignore_index=True)
        metrics = evaluate_tabular(train, holdout, synthetic, kinds, "diagnosis").metrics
        assert metrics["privacy_exact_copies"] == n and metrics["privacy_exact_copy_real_rate"] == 0
        gate = apply_gate(metrics, GateThresholds())
        assert any("more often than real records duplicate" in r for r in gate.reasons) == calibrated_rejects, metrics
        strict = apply_gate(metrics, GateThresholds(max_exact_copies=0))
        assert any(f"{n} synthetic rows are exact copies" in r for r in strict.reasons)


def test_an_honestly_trained_generator_passes(breast_cancer):
    kinds = infer_schema(breast_cancer, target="diagnosis").kinds
    train, holdout = split_train_holdout(breast_cancer, "diagnosis", 0.3, seed=0)
    model = CTGANGenerator(epochs=60, seed=0).fit(train, schema=infer_schema(train, target="diagnosis"))
    metrics = evaluate_tabular(train, holdout, model.sample(500), kinds, "diagnosis").metrics
    gate = apply_gate(metrics, GateThresholds())
    assert gate.passed, gate.reasons
    assert metrics["privacy_dcr_expected_share"] == pytest.approx(len(train) / len(breast_cancer))


def test_column_shapes_match_sdmetrics_definitions(breast_cancer):
    from sdmetrics.single_column import KSComplement, TVComplement

    table = simulated_admissions(800, seed=3)
    kinds = infer_schema(table, target="outcome").kinds
    a, b = table.iloc[:400], table.iloc[400:]
    ours = column_shapes(a, b, kinds)
    assert ours["bmi"] == pytest.approx(KSComplement.compute(a["bmi"].dropna(), b["bmi"].dropna()), abs=1e-9)
    assert ours["ward"] == pytest.approx(TVComplement.compute(a["ward"], b["ward"]), abs=1e-9)


def test_utility_reports_lift_and_spread_and_skips_one_class_synthetic(breast_cancer):
    kinds = infer_schema(breast_cancer, target="diagnosis").kinds
    train, holdout, third = three_way(breast_cancer, "diagnosis")
    metrics = evaluate_tabular(train, holdout, third[third.diagnosis == "malignant"], kinds, "diagnosis").metrics
    assert "utility_gbm_synthetic_auc" not in metrics  # one class cannot train a classifier alone
    assert metrics["utility_gbm_lift"] == pytest.approx(
        metrics["utility_gbm_augmented_auc"] - metrics["utility_gbm_real_auc"])
    assert metrics["utility_gbm_real_auc_std"] > 0  # bootstrap seeds give a real spread
    assert "utility_gbm_smote_auc" in metrics and "utility_gbm_smote_lift" in metrics
    assert 0.9 < metrics["utility_logistic_real_auc"] <= 1.0


def test_gate_lists_checks_it_could_not_run():
    gate = apply_gate({"privacy_exact_copy_pvalue": 1.0, "privacy_near_copy_pvalue": 0.5,
                       "privacy_dcr_pvalue": 0.5, "privacy_mia_auc": 0.5},
                      GateThresholds(min_utility_lift=0.0, max_detection_auc=0.9))
    assert gate.passed and len(gate.skipped) == 2


def test_dcr_test_holds_the_records_rows_land_on_fixed():
    """A collapsed generator is one draw of the split, not 500; a copy of the training rows is caught;
    rows landing on records blind to the split pass."""
    from evaluation.privacy import dcr_test

    n_train, n_hold = 400, 170
    piled = dcr_test(np.zeros(500), np.ones(500), np.zeros(500, int), np.zeros(500, int), n_train, n_hold)
    assert piled["privacy_dcr_hit_records"] == 1 and piled["privacy_dcr_pvalue"] > 0.5
    copied = dcr_test(np.zeros(400), np.ones(400), np.arange(400), np.zeros(400, int), n_train, n_hold)
    assert copied["privacy_dcr_hit_train_share"] == 1.0 and copied["privacy_dcr_pvalue"] < 0.001
    record = np.random.default_rng(3).integers(0, n_train + n_hold, 500)
    on_train = record < n_train
    blind = dcr_test(np.where(on_train, 0.0, 1.0), np.where(on_train, 1.0, 0.0), np.minimum(record, n_train - 1),
                     np.maximum(record - n_train, 0), n_train, n_hold)
    assert blind["privacy_dcr_pvalue"] > 0.01


def test_fidelity_quality_is_sdmetrics_own_quality_report(breast_cancer):
    """The report's quality is the package's number, not an all-pairs average that reads higher."""
    from sdmetrics.reports.single_table import QualityReport

    kinds = infer_schema(breast_cancer, target="diagnosis").kinds
    train, holdout, third = three_way(breast_cancer, "diagnosis")
    synthetic = noisy_copy(third, kinds, scale=0.3)
    metrics = evaluate_tabular(train, holdout, synthetic, kinds, "diagnosis").metrics
    metadata = {"columns": {c: {"sdtype": "categorical" if k == "categorical" else "numerical"}
                            for c, k in kinds.items()}}
    report = QualityReport()
    report.generate(train, synthetic, metadata, verbose=False)
    assert metrics["fidelity_quality"] == pytest.approx(report.get_score(), abs=1e-12)
    assert metrics["fidelity_pair_trends_all_pairs"] > metrics["fidelity_pair_trends"]
