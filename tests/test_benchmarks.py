"""The benchmark scripts run (tiny configurations, no timing assertions: figures go in the README)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from synth.images import load_image_splits, split_images
from tests.conftest import ROOT, SHARED_DATA


def run(script: str, *args: str, tmp_path) -> dict:
    out = tmp_path / "result.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())


def test_evaluation_benchmark_times_every_score_family(tmp_path):
    result = run("evaluation_scale.py", "--rows", "600", tmp_path=tmp_path)
    assert set(result["seconds"]) == {"column_shapes", "pair_trends", "adherence", "detection_auc", "dcr_and_copies",
                                      "membership_inference", "attribute_inference", "utility_3_seeds"}
    assert result["peak_mem_mb"] > 0


@pytest.mark.skipif(not (SHARED_DATA / "breastmnist.npz").exists(), reason="BreastMNIST not in ../shared/data")
def test_image_benchmark_puts_both_image_engines_side_by_side(tmp_path, breastmnist_quarter):
    source, counts = breastmnist_quarter
    result = run("image_gan.py", "--data", str(source), "--speed-iterations", "2", "--iterations", "6", "--seeds", "1",
                 tmp_path=tmp_path)
    assert result["images_per_s_28px"] > 0 and result["images_per_s_64px"] > 0
    assert set(result["configs"]) == {"image_gan", "translate"}
    for entry in result["configs"].values():
        assert entry["train_s"] > 0 and set(entry["requests"]) == {"label=0 rows=300", "balance"}
        for request in entry["requests"].values():
            assert request["evaluate_s"] > 0
            metrics = request["metrics"]
            assert {"fidelity_fid", "fidelity_coverage", "fidelity_coverage_real_reference", "utility_cnn_real_auc",
                    "utility_cnn_augmented_classical_auc", "utility_cnn_lift_low"} <= set(metrics)
    for request in result["configs"]["translate"]["requests"].values():
        assert request["metrics"]["fidelity_translation_cycle_error"] >= 0
        assert 0 <= request["metrics"]["privacy_translation_nearer_source"] <= 1
    assert counts[0] < counts[1]  # malignant (0) is the rarer class, as in the whole file
    assert result["configs"]["translate"]["requests"]["balance"]["images"] == counts[1] - counts[0]


def test_tabular_engine_benchmark_reports_every_field_for_both_engines(tmp_path):
    result = run("tabular_engines.py", "--rows", "600", "--epochs", "2", "--seeds", "1", "--batch-size", "100",
                 "--fast-batch-size", "200", "--pairs", "2", tmp_path=tmp_path)
    fields = {"preprocess_s", "epoch_s", "peak_mem_mb", "quality", "utility", "condition_rate", "time_to_quality_s"}
    for engine in ("ctgan", "tabgan"):
        assert fields <= set(result[engine])
        assert result[engine]["preprocess_s"] > 0 and 0 < result[engine]["quality"] <= 1
    assert result["tabgan"]["condition_rate"] == 1.0
    assert result["bare_epoch_s"] > 0 and result["interleaved"]["pairs"] == 2
    assert result["ratios"]["epoch_s_vs_bare"] > 0
    assert {"preprocess_s", "epoch_s", "peak_mem_mb", "quality", "utility", "epoch_s_vs_bare"} <= set(result["ratios"])


def test_small_table_summary_merges_runs_and_names_tables_without_baselines(tmp_path):
    """--summarise reads earlier results: a later file's run replaces an earlier one's of the same
    table, generator and seed, and a table with no baseline is said so instead of crashing."""
    fields = {"rows": 400, "wall_s": 1.0, "cpu_s": 1.0, "peak_mem_mb": 500.0, "quality": 0.8, "tstr_real_auc": 0.9,
              "tstr_real_f1": 0.8, "tstr_synthetic_f1": 0.7, "lift": 0.0, "lift_std": 0.01, "dcr_pvalue": 0.5,
              "exact_copies": 0, "gate_passed": True}

    def run(table, generator, detection, seed=0):
        return {"table": table, "generator": generator, "seed": seed, "detection_auc": detection,
                "tstr_synthetic_auc": 0.8, **fields}

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"runs": [run("t", "tabgan", 0.99), run("t", "copula", 0.90)]}))
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"runs": [run("t", "tabgan", 0.70), run("lonely", "tabgan", 0.80)]}))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "small_tables.py"), "--summarise", str(old),
                           str(new)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "- t: detection 0.700 (best baseline copula 0.900)" in done.stdout
    assert "- lonely: no baseline in these results" in done.stdout
    assert "below every baseline's on 1 of 1 tables" in done.stdout


def three_class_medmnist_file(tmp_path):
    """A MedMNIST-layout file of three classes, labels of shape (N, 1): train 60/20/40, val 10/5/10,
    test 30/12/24 images."""
    rng = np.random.default_rng(0)

    def split(counts):
        labels = np.repeat(np.arange(3), counts)
        images = np.clip(rng.normal(60 + 60 * labels[:, None, None], 20, (len(labels), 28, 28)), 0, 255)
        return images.astype(np.uint8), labels.reshape(-1, 1)

    parts = {"train": split([60, 20, 40]), "val": split([10, 5, 10]), "test": split([30, 12, 24])}
    source = tmp_path / "othermnist.npz"
    np.savez(source, **{f"{name}_{kind}": array for name, (images, labels) in parts.items()
                        for kind, array in (("images", images), ("labels", labels))})
    return source


def test_image_benchmark_takes_another_medmnist_file_and_a_development_split(tmp_path):
    """`--data` with a MedMNIST-layout file of three classes (labels of shape (N, 1)): the conditioned
    request names that file's rarest class; `--development` scores against part of the training split,
    the split `--split-seed` draws."""
    source = three_class_medmnist_file(tmp_path)
    result = run("image_gan.py", "--data", str(source), "--engines", "image_gan", "--iterations", "3",
                 "--seeds", "1", "--train-seeds", "2", "--development", "--split-seed", "3", tmp_path=tmp_path)
    assert result["data"] == str(source) and result["development"] is True and result["split_seed"] == 3
    requests = result["configs"]["image_gan"]["requests"]
    assert set(requests) == {"label=1 rows=300", "balance"}  # class 1 is the rarest: 25 of 145 images
    assert requests["label=1 rows=300"]["images"] == 300
    trained, _ = split_images(load_image_splits(str(source))[0], 0.2, seed=3)
    counts = np.bincount(trained.labels)
    assert requests["balance"]["images"] == (counts.max() - counts).sum()  # every class up to the largest
    # scored against the 20 % held back from training (5 and 10 images of classes 1 and 2), not the
    # file's test split (12 and 24)
    assert 3 <= requests["balance"]["metrics"]["fidelity_images_scored"] <= 10
    # --train-seeds 2: a second training (seed 1) scored for fidelity beside the first
    runs = result["configs"]["image_gan"]["trainings"]
    assert [training["seed"] for training in runs] == [0, 1] and runs[1]["train_s"] > 0
    for request, scored in requests.items():
        assert runs[0]["requests"][request]["coverage"] == scored["metrics"]["fidelity_coverage"]
        assert 0 <= runs[1]["requests"][request]["coverage"] <= 1


def test_ceiling_benchmark_scores_the_official_split_beside_its_resplits(tmp_path):
    """The official split's holdout is the file's test split; each re-split holds back a stratified
    fifth of train+val; every class's ceiling is a coverage, beside the identical-distribution figure."""
    source = three_class_medmnist_file(tmp_path)
    result = run("image_ceiling.py", "--data", str(source), "--resplits", "2", "--reference-sizes", "1,0.6",
                 "--iterations", "3", tmp_path=tmp_path)
    assert set(result["splits"]) == {"official", "resplit 0", "resplit 1"}
    official = result["splits"]["official"]
    assert [official[c]["holdout_images"] for c in official] == [30, 12, 24]
    assert [official[c]["train_images"] for c in official] == [70, 25, 50]
    assert [result["splits"]["resplit 1"][c]["holdout_images"] for c in official] == [14, 5, 10]
    for per_class in result["splits"].values():
        for scores in per_class.values():
            assert 0 <= scores["coverage"] <= 1
            expected = 1 - np.exp(-5 * scores["holdout_images"] / scores["train_images"])
            assert scores["identical_expected"] == pytest.approx(expected)
    for summary in result["summary"].values():
        assert summary["resplit_std"] >= 0 and 0 <= summary["resplit_mean"] <= 1
    # --reference-sizes: the rarest class (1: 25 training images, 12 test images) against subsets of its
    # training images, the scored images kept at the split's ratio
    sizes = result["by_reference_size"]
    assert [(row["train_images"], row["scored_images"]) for row in sizes] == [(25, 12), (15, 7)]
    for row in sizes:
        assert row["class"] == "1" and 0 <= row["real"] <= 1 and 0 <= row["generator"] <= 1


def test_paired_benchmark_trains_each_arm_and_seed_once_and_compares_them(tmp_path):
    """Every (arm, seed) is trained once and appended to the JSONL file; a rerun trains only what is
    missing; earlier files join the summary under the arm they are named for; the comparison is the
    per-seed difference of the two arms' coverage."""
    source = three_class_medmnist_file(tmp_path)
    runs = tmp_path / "runs.jsonl"
    common = ("--data", str(source), "--iterations", "3", "--jsonl", str(runs), "--compare", "base", "narrow")
    arms = json.dumps({"base": {}, "narrow": {"g_width": 8}})
    run("image_gan_paired.py", "--arms", arms, "--seeds", "0-1", *common, tmp_path=tmp_path)
    lines = [json.loads(line) for line in runs.read_text().splitlines()]
    assert sorted((line["name"], line["seed"]) for line in lines) == [("base", 0), ("base", 1), ("narrow", 0), ("narrow", 1)]
    assert {line["full_params"]["g_width"] for line in lines if line["name"] == "narrow"} == {8}
    assert all(line["full_params"]["iterations"] == 3 and 0 <= line["fidelity_coverage"] <= 1 for line in lines)

    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text(json.dumps({**lines[0], "name": "defaults", "seed": 2, "fidelity_coverage": 0.25}) + "\n")
    result = run("image_gan_paired.py", "--arms", json.dumps({"narrow": {"g_width": 8}}), "--seeds", "0-2",
                 "--records", f"{earlier}:defaults=base", *common, tmp_path=tmp_path)
    again = [json.loads(line) for line in runs.read_text().splitlines()]
    assert [(line["name"], line["seed"]) for line in again[4:]] == [("narrow", 2)]  # only the missing one
    coverage = {(line["name"], line["seed"]): line["fidelity_coverage"] for line in again}
    coverage["base", 2] = 0.25
    comparison = result["comparison"]
    assert comparison["seeds"] == [0, 1, 2]
    assert comparison["differences"] == pytest.approx(
        [coverage["narrow", s] - coverage["base", s] for s in range(3)], abs=1e-4)
    assert comparison["higher"] == sum(d > 0 for d in comparison["differences"])


def test_paired_benchmark_draws_one_training_again_with_each_sampling_variant(tmp_path):
    """`--draw-variants`: one training per arm and seed, drawn once as the arm and once per variant
    (`ARM:VARIANT`), each line with the settings it was drawn with."""
    source = three_class_medmnist_file(tmp_path)
    runs = tmp_path / "runs.jsonl"
    run("image_gan_paired.py", "--arms", json.dumps({"base": {}}), "--seeds", "0", "--data", str(source),
        "--iterations", "3", "--workers", "1", "--jsonl", str(runs),
        "--draw-variants", json.dumps({"plain": {"typical_draws": 1}}), tmp_path=tmp_path)
    lines = {line["name"]: line for line in map(json.loads, runs.read_text().splitlines())}
    assert sorted(lines) == ["base", "base:plain"]
    assert lines["base"]["params"] == {"iterations": 3} and lines["base:plain"]["params"] == {"iterations": 3, "typical_draws": 1}
    assert lines["base"]["full_params"]["typical_draws"] == 4 and lines["base:plain"]["full_params"]["typical_draws"] == 1
    assert lines["base"]["train_s"] == lines["base:plain"]["train_s"]  # the one training


def test_label_checker_benchmark_scores_each_training_by_every_checker(tmp_path):
    """Each training's rarest-class draw, plain and matched, judged by each of the gate's five CNNs and the
    engine's five out-of-fold CNNs: shares of the class and threshold-free AUCs, beside the real images'."""
    source = three_class_medmnist_file(tmp_path)
    result = run("image_label_checkers.py", "--data", str(source), "--seeds", "0-1", "--iterations", "3",
                 tmp_path=tmp_path)
    assert result["class"] == load_image_splits(str(source))[0].class_names[1]  # the rarest class
    assert len(result["gate_members_real_shares"]) == len(result["gate_members_real_ranks"]) == 5
    assert [row["seed"] for row in result["trainings"]] == [0, 1]
    for row in result["trainings"]:
        assert len(row["folds_real_shares"]) == 5 and 0 <= row["out_of_fold_train_share"] <= 1
        for draws in ("draws_1", "draws_4"):
            scored = row[draws]
            assert len(scored["gate_members_shares"]) == len(scored["folds_shares"]) == 5
            assert all(0 <= x <= 1 for x in [*scored["gate_members_ranks"], scored["gate_share"],
                                              scored["folds_together_share"]])


def test_paired_benchmark_stops_once_the_share_rule_is_out_of_reach(tmp_path):
    """Against a base that scored coverage 1.0 (no setting can be higher) on four seeds, the rule's
    three wins of four are out of reach after two losses: the run ends there, seeds 2-3 untrained."""
    source = three_class_medmnist_file(tmp_path)
    runs, earlier = tmp_path / "runs.jsonl", tmp_path / "earlier.jsonl"
    earlier.write_text("".join(json.dumps({"name": "defaults", "seed": seed, "fidelity_coverage": 1.0,
                                           "fidelity_recall": 1.0, "fidelity_fid": 0.0}) + "\n"
                               for seed in range(4)))
    result = run("image_gan_paired.py", "--arms", json.dumps({"narrow": {"g_width": 8}}), "--seeds", "0-3",
                 "--data", str(source), "--iterations", "3", "--workers", "1", "--jsonl", str(runs),
                 "--records", f"{earlier}:defaults=base", "--compare", "base", "narrow", "--stop-early",
                 tmp_path=tmp_path)
    trained = [json.loads(line)["seed"] for line in runs.read_text().splitlines()]
    assert trained == [0, 1]
    assert result["comparison"]["seeds"] == [0, 1] and result["comparison"]["higher"] == 0


def test_lift_reference_scores_real_and_generated_additions_to_each_half(tmp_path):
    """Each half of the training split gets the other half's rarest-class images, the whole other half and
    the GAN's draws (as many, and 300) as its additions, each scored by the evaluate stage's utility arms."""
    source = three_class_medmnist_file(tmp_path)
    result = run("image_lift_reference.py", "--data", str(source), "--iterations", "3", "--seeds", "1",
                 tmp_path=tmp_path)
    train = load_image_splits(str(source))[0]
    assert result["class"] == train.class_names[1]  # the rarest class
    assert [(h["partition"], h["side"]) for h in result["halves"]] == [(0, "a"), (0, "b")]
    for h in result["halves"]:
        added = h["additions"]
        assert h["train_images"] + h["reserve_images"] == len(train)
        assert added["real_all"]["images"] == h["reserve_images"]
        assert added["real_rarest"]["images"] == added["gan_rarest_same_count"]["images"] < h["reserve_images"]
        assert added["gan_rarest_300"]["images"] == 300
        for scored in added.values():
            assert scored["best_with"].startswith("augmented") and scored["best_without"].startswith("real")
            assert scored["lift"] == pytest.approx(scored["auc_with"] - scored["auc_without"])
