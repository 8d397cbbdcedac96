"""Our tabular engine's own promises: the encoding round-trips, conditions are exact even when the
model cannot meet them, early stopping and time budgets stop training, state stays small."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from synth.errors import InputError
from synth.generators import TabGAN, make_generator
from synth.generators.mixture import fit_mixture
from synth.generators.mode_encoding import ModeSpecificEncoder
from synth.schema import infer_schema
from synth.simulated import simulated_admissions


def test_mode_specific_encoding_round_trips_values_and_categories():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": np.r_[rng.normal(-5, 1, 3000), rng.normal(20, 3, 2000)],
                          "c": rng.choice(["a", "b", "c"], 5000)})
    encoder = ModeSpecificEncoder(mixture_rows=1000, seed=0).fit(frame, ["c"])
    encoded = encoder.transform(frame)
    assert encoded.codes.dtype == np.int64 and encoded.codes.shape == (5000, 2)  # codes, never one-hot rows
    assert 2 <= len(encoder.continuous_[0]["means"]) <= 10
    back = encoder.inverse_transform(encoded.alphas, encoded.codes)
    assert (back["c"] == frame["c"]).all()
    inside = np.abs(encoded.alphas[:, 0]) < 0.99  # clipped values sit beyond 4 standard deviations
    assert inside.mean() > 0.99
    np.testing.assert_allclose(back["x"][inside], frame["x"][inside], rtol=1e-4, atol=1e-3)
    # metadata only: its size does not grow with the rows
    assert len(json.dumps(encoder.to_dict())) < 2000


def test_quantile_encoding_keeps_each_columns_order_and_round_trips():
    """Normal scores through the training percentiles: a monotone map, so columns that rise together
    (breast cancer's radius and perimeter) stay together; tied levels come back to their own value."""
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.lognormal(0, 1, 600)
    frame = pd.DataFrame({"x": x, "y": 3 * x + rng.normal(0, 0.1, 600),
                          "level": rng.integers(0, 5, 600).astype(float), "c": rng.choice(["a", "b"], 600)})
    encoder = ModeSpecificEncoder(continuous_encoding="quantile").fit(frame, ["c"])
    encoded = encoder.transform(frame)
    assert encoder.span_widths == [1, 1, 1, 2]
    assert np.abs(encoded.alphas).max() < 0.7  # normal scores within +-2.6, well inside tanh's range
    assert stats.spearmanr(encoded.alphas[:, 0], frame["x"]).statistic == pytest.approx(1.0)
    back = encoder.inverse_transform(encoded.alphas, encoded.codes)
    np.testing.assert_allclose(back["x"], frame["x"], rtol=1e-6)
    assert (back["level"].round() == frame["level"]).all()
    assert ModeSpecificEncoder.from_dict(json.loads(json.dumps(encoder.to_dict()))).continuous_encoding == "quantile"
    with pytest.raises(ValueError, match="continuous_encoding"):
        ModeSpecificEncoder(continuous_encoding="ranks")


def test_the_one_dimensional_mixture_is_scikit_learns_variational_mixture():
    """Same priors, start and stopping rule: the same components as BayesianGaussianMixture,
    on a smooth mixture and on an integer-valued, skewed column (length of stay)."""
    from sklearn.mixture import BayesianGaussianMixture

    rng = np.random.default_rng(3)
    columns = [np.r_[rng.normal(-5, 1, 700), rng.normal(3, 0.5, 250), rng.normal(12, 4, 50)],
               np.minimum(rng.geometric(0.2, 1500), 40).astype(float)]
    for values in columns:
        k = min(10, np.unique(values).size)
        theirs = BayesianGaussianMixture(n_components=k, weight_concentration_prior=1e-3, max_iter=100,
                                         random_state=7).fit(values.reshape(-1, 1))
        ours = fit_mixture(values, k, concentration=1e-3, seed=7)
        np.testing.assert_allclose(ours.weights, theirs.weights_, atol=1e-6)
        np.testing.assert_allclose(ours.means, theirs.means_.ravel(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ours.variances, theirs.covariances_.ravel(), rtol=1e-5, atol=1e-8)
        assert ours.converged == theirs.converged_


def test_no_mode_is_fitted_to_a_handful_of_rows():
    """A mode on three outlying training rows would let the generator reproduce them."""
    rng = np.random.default_rng(1)
    values = np.r_[rng.normal(0, 1, 397), [40.0, 40.1, 40.2]]
    encoder = ModeSpecificEncoder(seed=0).fit(pd.DataFrame({"x": values}), [])
    info = encoder.continuous_[0]
    assert min(info["weights"]) >= 20 / len(values) - 1e-9
    assert all(abs(mean) < 10 for mean in info["means"])  # none placed on the outliers
    tiny = ModeSpecificEncoder(seed=0).fit(pd.DataFrame({"x": rng.normal(0, 1, 15)}), [])
    assert len(tiny.continuous_[0]["means"]) == 1  # fewer rows than one mode needs: the heaviest mode


def test_several_conditions_at_once_are_exact_and_report_acceptance():
    table = simulated_admissions(600, seed=4)
    model = TabGAN(epochs=3, batch_size=200, seed=0).fit(table, discrete_columns=["outcome"])
    rows = model.sample(200, {"ward": "oncology", "sex": "female", "outcome": "readmitted"})
    assert len(rows) == 200
    assert ((rows["ward"] == "oncology") & (rows["sex"] == "female") & (rows["outcome"] == "readmitted")).all()
    assert 0 < model.acceptance_rate_ <= 1


def test_a_combination_never_seen_is_still_exact_with_the_shortfall_reported():
    letters = np.random.default_rng(1).choice(["x", "y"], 400)
    table = pd.DataFrame({"a": letters, "b": letters, "v": np.arange(400.0)})  # a and b always agree
    model = TabGAN(epochs=2, batch_size=100, seed=0).fit(table, discrete_columns=["a", "b"])
    rows = model.sample(300, {"a": "x", "b": "y"})
    assert len(rows) == 300 and (rows["a"] == "x").all() and (rows["b"] == "y").all()
    assert model.acceptance_rate_ < 1
    assert 0 <= model.forced_rows_ < 300 or model.acceptance_rate_ == 0


def test_early_stopping_and_time_budget_end_training_before_the_epoch_count():
    table = simulated_admissions(400, seed=5)
    patient = TabGAN(epochs=300, batch_size=100, seed=0, patience=2, validate_every=1).fit(table)
    assert patient.stopped_epoch_ < 300
    assert len(patient.validation_scores_) == patient.stopped_epoch_
    assert patient.best_score_ in patient.validation_scores_  # the kept weights are the best ones,
    assert max(patient.validation_scores_) - patient.best_score_ <= 1e-3  # up to the minimum gain
    hurried = TabGAN(epochs=10_000, batch_size=100, seed=0, time_budget_s=1.0).fit(table)
    assert hurried.stopped_epoch_ < 10_000
    assert len(hurried.loss_history_) == hurried.stopped_epoch_


def test_small_tables_get_smaller_batches_and_packs_large_ones_the_papers():
    """At least 4 steps an epoch and 50 packs a step: pac 10 at a 60-row batch left the
    discriminator 6 samples a step."""
    small = TabGAN(epochs=1, seed=0).fit(simulated_admissions(300, seed=8))
    assert (small.batch_, small.pac_) == (75, 1)
    middle = TabGAN(epochs=1, seed=0).fit(simulated_admissions(700, seed=8))
    assert (middle.batch_, middle.pac_) == (174, 3)
    large = TabGAN(epochs=1, seed=0).fit(simulated_admissions(2400, seed=8))
    assert (large.batch_, large.pac_) == (500, 10)


def test_partial_fit_continues_training_and_recalibrates():
    table = simulated_admissions(300, seed=6)
    model = TabGAN(epochs=2, batch_size=100, seed=0).fit(table)
    first = model.calibration_.maps
    model.partial_fit(3)
    assert model.loss_history_["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert len(model.timings_["epoch_s"]) == 5
    # the map is refitted to the generator as it is now, onto the same training percentiles
    assert {c: m[1] for c, m in model.calibration_.maps.items()} == {c: m[1] for c, m in first.items()}
    assert all(model.calibration_.maps[c][0] != first[c][0] for c in first)


def test_high_cardinality_categories_and_bf16_autocast_train_and_sample():
    rng = np.random.default_rng(2)
    table = pd.DataFrame({"code": [f"K{i}" for i in rng.integers(0, 300, 1000)], "y": rng.normal(size=1000),
                          "group": rng.choice(["p", "q"], 1000)})
    model = make_generator("tabgan", epochs=2, batch_size=200, seed=0, precision="bf16").fit(
        table, discrete_columns=["code", "group"])
    assert model._rows.codes.shape == (1000, 3)  # one code per span, not a one-hot per category
    rows = model.sample(500, {"code": "K7"})
    assert (rows["code"] == "K7").all()


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(Exception, match="precision"):
        TabGAN(epochs=1, precision="fp8").fit(simulated_admissions(100, seed=0))


def test_differentially_private_training_spends_no_more_than_its_budget():
    table = simulated_admissions(500, seed=7)
    model = TabGAN(epochs=4, batch_size=100, seed=0, dp_epsilon=3.0).fit(table)
    assert 2.0 < model.epsilon_ <= 3.0 + 1e-6  # DP-SGD's share plus the noisy frequencies' 10 %
    for info in model.encoder_.discrete_:
        assert sum(info["frequencies"]) == pytest.approx(1.0)
    rows = model.sample(100, {"ward": "surgery"})
    assert (rows["ward"] == "surgery").all()
    with pytest.raises(RuntimeError, match="within its budget"):
        model.partial_fit(1)
    assert model.encoder_.continuous_encoding == "modes"  # the default under DP: percentiles are not private
    with pytest.raises(InputError, match="differential privacy"):
        TabGAN(epochs=1, dp_epsilon=3.0, continuous_encoding="quantile").fit(table)


def test_marginal_calibration_gives_columns_the_training_shape_and_keeps_conditions(breast_cancer, tmp_path):
    """Small tables: each continuous column mapped onto the training percentiles after training;
    one fixed monotone map, so rows keep their order (and a conditioned draw its shift); the map is
    saved with the model."""
    from synth.generators import TabularGenerator

    schema = infer_schema(breast_cancer, target="diagnosis")
    columns = ["mean radius", "worst concave points", "area error", "mean smoothness"]

    def mean_ks(model):
        synthetic = model.sample(len(breast_cancer), seed=1)
        return np.mean([stats.ks_2samp(breast_cancer[c], synthetic[c]).statistic for c in columns])

    raw = TabGAN(epochs=30, seed=0, calibrate=False, align_correlations=False).fit(breast_cancer, schema=schema)
    calibrated = TabGAN(epochs=30, seed=0, align_correlations=False).fit(breast_cancer, schema=schema)
    assert mean_ks(calibrated) < min(0.1, mean_ks(raw))
    # the same conditioned draw with and without the map: values move, their order does not
    mapped = calibrated.sample(300, {"diagnosis": "malignant"}, seed=2)
    calibration, calibrated.calibration_ = calibrated.calibration_, None
    unmapped = calibrated.sample(300, {"diagnosis": "malignant"}, seed=2)
    calibrated.calibration_ = calibration
    for c in columns:  # grouped by the unmapped value (a pile is one group), groups stay in order
        groups = pd.DataFrame({"raw": unmapped[c], "mapped": mapped[c]}).groupby("raw")["mapped"].agg(["min", "max"])
        assert (groups["max"].to_numpy()[:-1] <= groups["min"].to_numpy()[1:]).all(), c
    assert not mapped[columns].equals(unmapped[columns])
    calibrated.save(tmp_path / "model")
    assert TabularGenerator.load(tmp_path / "model").sample(40, seed=3).equals(calibrated.sample(40, seed=3))


def test_raking_selects_rows_whose_category_shares_are_the_targets():
    from synth.generators.calibration import raked_selection

    rng = np.random.default_rng(0)
    first = rng.choice(3, 40_000, p=[0.7, 0.25, 0.05])
    second = (rng.random(40_000) < np.where(first == 0, 0.2, 0.6)).astype(int)  # dependent on the first
    keep = raked_selection(np.c_[first, second], [np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4])], 10_000, rng)
    assert len(np.unique(keep)) == 10_000  # distinct rows, each kept whole
    np.testing.assert_allclose(np.bincount(first[keep]) / 10_000, [0.5, 0.3, 0.2], atol=0.01)
    np.testing.assert_allclose(np.bincount(second[keep]) / 10_000, [0.6, 0.4], atol=0.01)


def test_an_unconditional_draw_has_the_training_category_shares():
    """30 epochs leave shares off by up to 0.06; the unconditional draw is raked onto them
    (missing shares included, as indicator columns); conditioned draws stay exact."""
    table = simulated_admissions(600, seed=9)
    model = TabGAN(epochs=30, seed=0).fit(table)
    raw = TabGAN(epochs=30, seed=0, rake=False).fit(table)
    drawn, unraked = model.sample(3000, seed=1), raw.sample(3000, seed=1)

    def worst_gap(frame):
        gaps = [(frame[c].astype(str).value_counts(normalize=True)
                 - table[c].astype(str).value_counts(normalize=True)).abs().max() for c in ("sex", "ward", "outcome")]
        return max(gaps + [abs(frame["bmi"].isna().mean() - table["bmi"].isna().mean())])

    assert worst_gap(drawn) < min(0.025, worst_gap(unraked) / 2)
    assert (model.sample(200, {"ward": "surgery"}, seed=2)["ward"] == "surgery").all()


def test_calibration_spreads_a_pile_of_generated_values_over_the_levels_it_covers():
    from synth.generators.calibration import MarginalCalibration

    rng = np.random.default_rng(0)
    generated = pd.DataFrame({"x": np.r_[np.full(300, 1.0), rng.uniform(1, 2, 700)]})  # 30 % piled at 1.0
    real = pd.DataFrame({"x": rng.normal(0, 1, 500)})
    levels = MarginalCalibration.training_levels(real, ["x"])
    mapped = MarginalCalibration.fit(levels, generated).transform(generated, rng)["x"]
    assert mapped.nunique() > 900 and abs(mapped.mean() - real["x"].mean()) < 0.15
    assert mapped.min() >= real["x"].min() and mapped.max() <= real["x"].max()


def test_correlation_alignment_gives_each_class_the_training_correlation_and_keeps_missing_values():
    from synth.generators.calibration import CorrelationAlignment, MarginalCalibration

    rng = np.random.default_rng(0)

    def correlated(n, rho, shift):
        z = rng.multivariate_normal([shift, -shift], [[1, rho], [rho, 1]], n)
        return pd.DataFrame({"x": np.exp(z[:, 0]), "y": z[:, 1]})

    real = pd.concat([correlated(600, 0.8, 0.0).assign(label="a"), correlated(400, -0.6, 1.0).assign(label="b")])
    generated = pd.DataFrame({"x": np.exp(rng.normal(0.3, 1, 5000)), "y": rng.normal(0, 1, 5000),
                              "label": rng.choice(["a", "b"], 5000, p=[0.6, 0.4])})
    generated.loc[:99, "x"] = np.nan
    levels = MarginalCalibration.training_levels(real, ["x", "y"])
    alignment = CorrelationAlignment.fit(levels, real, generated, "label", rng)
    aligned = alignment.transform(generated, rng)
    assert aligned["x"].isna().to_numpy()[:100].all() and aligned["x"].notna().sum() == 4900
    for label, rho, shift in (("a", 0.8, 0.0), ("b", -0.6, 1.0)):
        rows = aligned[aligned["label"] == label]
        assert abs(stats.spearmanr(rows["x"], rows["y"], nan_policy="omit")[0] - rho) < 0.1, label
        assert abs(rows["y"].mean() + shift) < 0.1, label
    assert aligned["x"].min() >= real["x"].min() and aligned["x"].max() <= real["x"].max()
    again = CorrelationAlignment.from_dict(alignment.to_dict()).transform(generated, np.random.default_rng(1))
    np.testing.assert_allclose(again["y"], alignment.transform(generated, np.random.default_rng(1))["y"])


def test_aligned_tabgan_keeps_columns_that_rise_together_and_each_class_its_own_mean(tmp_path, breast_cancer):
    """30 epochs on breast cancer: radius and perimeter (rank correlation 1.00 in the table) came
    out nearly independent, and malignant rows with the benign radius; aligned, both hold."""
    from synth.generators import TabularGenerator

    schema = infer_schema(breast_cancer, target="diagnosis")
    aligned = TabGAN(epochs=30, seed=0).fit(breast_cancer, schema=schema)
    plain = TabGAN(epochs=30, seed=0, align_correlations=False).fit(breast_cancer, schema=schema)

    def radius_perimeter(model):
        drawn = model.sample(len(breast_cancer), seed=1)
        return stats.spearmanr(drawn["mean radius"], drawn["mean perimeter"])[0]

    assert radius_perimeter(aligned) > max(0.9, radius_perimeter(plain) + 0.2)
    malignant = aligned.sample(300, {"diagnosis": "malignant"}, seed=2)
    assert (malignant["diagnosis"] == "malignant").all()
    real = breast_cancer.groupby("diagnosis")["mean radius"].mean()
    assert abs(malignant["mean radius"].mean() - real["malignant"]) < abs(malignant["mean radius"].mean() - real["benign"])
    aligned.save(tmp_path / "model")
    assert TabularGenerator.load(tmp_path / "model").sample(40, seed=3).equals(aligned.sample(40, seed=3))
