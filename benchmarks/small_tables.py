"""The small-table suite: tabgan against what a data scientist would try instead, one scorer for all.

Tables: the three real medical tables in ../shared/data/tables (or $SYNTHAUG_DATA_DIR/tables),
scikit-learn's breast cancer, and the simulated admissions table at 1,000 and 5,000 rows. For each
table and seed: a stratified 70/30 split; every generator fits the training part in a child process
of its own (CPU and wall seconds, peak memory), draws as many rows as it was trained on, and the
same functions score every draw against the same split:
- SDMetrics' own QualityReport (the package);
- detection AUC: gradient boosting telling synthetic from real training rows, 5-fold CV (0.5 =
  indistinguishable);
- TSTR: gradient boosting trained on the synthetic rows, AUC and macro F1 on the real holdout,
  beside the same model trained on the real training rows (the ceiling);
- augmentation lift: holdout AUC of real + synthetic minus real, mean and std over 5 repeats;
- privacy: the DCR test's p-value, exact copies of training rows, the publish gate's verdict.

Generators: tabgan at its defaults; the ctgan package's CTGAN and TVAE (300 epochs); SDV's
Gaussian copula; an adversarial random forest (arfpy); references: the real holdout itself and a
1 %-noise copy of the training rows. Baselines come from the optional extra:
`pip install -e '.[bench]'` (SDV is under the Business Source License: a benchmark baseline only).

    python benchmarks/small_tables.py [--seeds 3] [--tables ...] [--generators ...] [--json out.json]
    python benchmarks/small_tables.py --summarise benchmarks/results/small_tables.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from evaluation.fidelity import detection_auc, sdmetrics_quality  # noqa: E402
from evaluation.gate import GateThresholds, apply_gate  # noqa: E402
from evaluation.privacy import privacy_scores  # noqa: E402
from evaluation.utility import utility_scores  # noqa: E402
from synth.schema import apply_schema, infer_schema  # noqa: E402
from synth.simulated import simulated_admissions  # noqa: E402
from synth.tables import load_table, split_train_holdout  # noqa: E402

SHARED_TABLES = {"indian_liver_patient": "Liver_Disease", "kidney_disease": "classification",
                 "maternal_health_risk": "RiskLevel"}
TABLES = (*SHARED_TABLES, "breast_cancer", "admissions_1k", "admissions_5k")
GENERATORS = ("tabgan", "ctgan", "tvae", "copula", "arf", "holdout", "noisy_copy")
BASELINE_EPOCHS = 300


def load_suite_table(name: str) -> tuple[pd.DataFrame, str]:
    if name in SHARED_TABLES:
        folder = Path(os.environ.get("SYNTHAUG_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
        return pd.read_csv(folder / "tables" / f"{name}.csv", encoding="utf-8-sig"), SHARED_TABLES[name]
    if name == "breast_cancer":
        return load_table("builtin:breast_cancer"), "diagnosis"
    rows = {"admissions_1k": 1000, "admissions_5k": 5000}[name]
    return simulated_admissions(rows, seed=11), "outcome"


# ----- child process: one fit -------------------------------------------------
def fit_worker(spec: dict) -> dict:
    """Fit one generator on the training rows and draw as many; report this process's costs."""
    train = pd.read_parquet(spec["train"])
    kinds = spec["kinds"]
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    params = spec.get("params", {}) if spec["generator"] == "tabgan" else {}
    synthetic = FITTERS[spec["generator"]](train, kinds, spec["target"], spec["seed"], **params)
    fit_wall, fit_cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    synthetic.to_parquet(spec["out"], index=False)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": fit_wall, "cpu_s": fit_cpu + children.ru_utime + children.ru_stime,
            "peak_mem_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def fit_tabgan(train, kinds, target, seed, **params):
    from synth.generators import TabGAN
    from synth.schema import Schema

    model = TabGAN(seed=seed, **params).fit(train, schema=Schema(kinds, target=target))
    return model.sample(len(train), seed=seed)


def _imputed(train: pd.DataFrame, kinds: dict) -> tuple[pd.DataFrame, list[str]]:
    """The ctgan package, TVAE and arfpy refuse missing numbers: training medians; categories as text."""
    frame = train.copy()
    discrete = [c for c, k in kinds.items() if k in ("categorical", "boolean")]
    for column, kind in kinds.items():
        if kind == "numeric":
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
            frame[column] = frame[column].fillna(frame[column].median())
        elif kind == "datetime":
            frame[column] = frame[column].astype(str)
            discrete.append(column)
        else:
            frame[column] = frame[column].astype(str)
    return frame, discrete


def _restore(synthetic: pd.DataFrame, train: pd.DataFrame, kinds: dict) -> pd.DataFrame:
    """Back to the training table's types: categories that were numbers become numbers again."""
    out = synthetic.copy()
    for column, kind in kinds.items():
        if kind in ("categorical", "boolean") and pd.api.types.is_numeric_dtype(train[column]):
            out[column] = pd.to_numeric(out[column], errors="coerce")
        elif kind == "numeric" and pd.api.types.is_integer_dtype(train[column]):
            out[column] = pd.to_numeric(out[column], errors="coerce").round()
    return out[list(kinds)]


def fit_ctgan_package(model_name: str):
    def fit(train, kinds, target, seed):
        import torch
        from ctgan import CTGAN, TVAE

        torch.manual_seed(seed)
        np.random.seed(seed)
        frame, discrete = _imputed(train, kinds)
        model = (CTGAN if model_name == "ctgan" else TVAE)(epochs=BASELINE_EPOCHS)
        model.fit(frame, discrete)
        return _restore(model.sample(len(train)), train, kinds)
    return fit


def fit_copula(train, kinds, target, seed):
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    types = {"numeric": "numerical", "categorical": "categorical", "boolean": "boolean", "datetime": "categorical"}
    metadata = Metadata.load_from_dict({"tables": {"table": {"columns": {
        c: {"sdtype": types[k]} for c, k in kinds.items()}}}})
    frame = train.copy()
    for c, k in kinds.items():
        if k in ("categorical", "datetime"):
            frame[c] = frame[c].astype(str)
    np.random.seed(seed)
    model = GaussianCopulaSynthesizer(metadata)
    model.fit({"table": frame})
    synthetic = model.sample(len(train))
    return _restore(synthetic["table"] if isinstance(synthetic, dict) else synthetic, train, kinds)


def fit_arf(train, kinds, target, seed):
    np.in1d = np.isin  # arfpy 0.1.1 calls np.in1d, removed in numpy 2.4
    from arfpy import arf

    frame, _ = _imputed(train, kinds)
    for c, k in kinds.items():
        if k != "numeric":
            frame[c] = frame[c].astype("category")
    np.random.seed(seed)
    model = arf.arf(x=frame.reset_index(drop=True), random_state=seed)
    model.forde()
    synthetic = model.forge(n=len(train))
    return _restore(synthetic, train, kinds)


FITTERS = {"tabgan": fit_tabgan, "ctgan": fit_ctgan_package("ctgan"), "tvae": fit_ctgan_package("tvae"),
           "copula": fit_copula, "arf": fit_arf}


def run_child(spec: dict, workdir: Path) -> dict:
    path = workdir / "spec.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['generator']} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----- scoring in the parent ----------------------------------------------------
def tstr(train, holdout, synthetic, kinds, target, seed) -> dict:
    """Gradient boosting trained on synthetic (and on real, the ceiling), tested on the real holdout."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import f1_score, roc_auc_score

    from evaluation.features import FeatureEncoder

    features = {c: k for c, k in kinds.items() if c != target}
    encoder = FeatureEncoder(features).fit(train)
    y_hold = holdout[target].astype(str).to_numpy()
    classes = sorted(set(train[target].astype(str)))
    out = {}
    for name, frame in (("real", train), ("synthetic", synthetic)):
        y = frame[target].astype(str).to_numpy()
        if len(set(y)) < 2:
            out[f"tstr_{name}_auc"] = out[f"tstr_{name}_f1"] = float("nan")
            continue
        model = HistGradientBoostingClassifier(max_iter=150, random_state=seed).fit(encoder.transform(frame), y)
        proba = np.zeros((len(holdout), len(classes)))
        for i, label in enumerate(model.classes_):
            proba[:, classes.index(label)] = model.predict_proba(encoder.transform(holdout))[:, i]
        auc = (roc_auc_score(y_hold == classes[1], proba[:, 1]) if len(classes) == 2 else
               roc_auc_score(y_hold, proba, multi_class="ovr", labels=classes))
        out[f"tstr_{name}_auc"] = float(auc)
        out[f"tstr_{name}_f1"] = float(f1_score(y_hold, np.asarray(classes)[proba.argmax(1)], average="macro"))
    return out


def score(train, holdout, synthetic, kinds, target, seed) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"quality": sdmetrics_quality(train, synthetic, kinds)["score"],
               "detection_auc": detection_auc(train, synthetic, kinds, seed=seed, folds=5)[0],
               **tstr(train, holdout, synthetic, kinds, target, seed)}
        utility = utility_scores(train, holdout, synthetic, kinds, target, seeds=range(seed, seed + 5))
        privacy = privacy_scores(train, holdout, synthetic, kinds)
    out["lift"], out["lift_std"] = utility["utility_gbm_lift"], utility["utility_gbm_lift_std"]
    out["dcr_pvalue"], out["exact_copies"] = privacy["privacy_dcr_pvalue"], privacy["privacy_exact_copies"]
    gate = apply_gate({**privacy, "privacy_mia_auc": 0.5}, GateThresholds())  # membership scored by the flow
    out["gate_passed"] = gate.passed
    return out


def noisy_copy(train: pd.DataFrame, kinds: dict, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = train.copy()
    for column, kind in kinds.items():
        if kind == "numeric":
            values = pd.to_numeric(out[column], errors="coerce").astype(float)
            out[column] = values + rng.normal(0, 0.01 * values.std(), len(values))
    return out


def run_table(name: str, seeds: int, generators: list[str], workdir: Path, development: bool = False,
              tabgan_params: dict | None = None) -> list[dict]:
    table, target = load_suite_table(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = infer_schema(table, target=target)
        table = apply_schema(table, schema)
    kinds = {c: k for c, k in schema.kinds.items() if k != "id"}
    results = []
    for seed in range(seeds):
        train, holdout = split_train_holdout(table, target, 0.3, seed)
        if development:  # design choices are scored inside the training part; the holdout stays unseen
            train, holdout = split_train_holdout(train, target, 0.3, seed + 1000)
        train_path = workdir / f"{name}-{seed}-train.parquet"
        train.to_parquet(train_path, index=False)
        for generator in generators:
            costs = {}
            if generator == "holdout":
                synthetic = holdout
            elif generator == "noisy_copy":
                synthetic = noisy_copy(train, kinds, seed)
            else:
                out = workdir / f"{name}-{seed}-{generator}.parquet"
                costs = run_child({"generator": generator, "train": str(train_path), "kinds": kinds,
                                   "target": target, "seed": seed, "out": str(out),
                                   "params": tabgan_params or {}}, workdir)
                synthetic = pd.read_parquet(out)
            row = {"table": name, "rows": len(table), "seed": seed, "generator": generator,
                   "split": "development" if development else "holdout", "tabgan_params": tabgan_params or {}, **costs,
                   **score(train, holdout, synthetic, kinds, target, seed)}
            results.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    return results


def summary_table(results: list[dict]) -> str:
    frame = pd.DataFrame(results)
    measures = ["quality", "detection_auc", "tstr_synthetic_auc", "tstr_synthetic_f1", "lift", "dcr_pvalue",
                "exact_copies", "cpu_s", "wall_s", "peak_mem_mb"]
    # the holdout reference would be trained on the rows it is tested on: no TSTR, no lift
    frame.loc[frame["generator"] == "holdout", ["tstr_synthetic_auc", "tstr_synthetic_f1", "lift"]] = np.nan
    mean = frame.groupby(["table", "generator"], sort=False)[[m for m in measures if m in frame]].mean()
    ceiling = frame.groupby("table", sort=False)["tstr_real_auc"].mean()
    lines = ["| table | generator | SDMetrics quality | detection AUC | TSTR AUC (ceiling) | TSTR F1 | lift | DCR p "
             "| exact copies | CPU s | wall s | peak MB |", "|" + "---|" * 12]
    for (table, generator), row in mean.iterrows():
        cells = [f"{row.get(m, float('nan')):.3f}" for m in ("quality", "detection_auc")]
        cells.append(f"{row['tstr_synthetic_auc']:.3f} ({ceiling[table]:.3f})")
        cells += [f"{row.get(m, float('nan')):.3f}" for m in ("tstr_synthetic_f1", "lift", "dcr_pvalue")]
        cells += [f"{row.get(m, float('nan')):.1f}" for m in ("exact_copies", "cpu_s", "wall_s")]
        cells.append(f"{row.get('peak_mem_mb', float('nan')):.0f}")
        lines.append(f"| {table} | {generator} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


BASELINES = ("ctgan", "tvae", "copula", "arf")


def against_the_bars(results: list[dict]) -> str:
    """Issue #12's bars, as measured: tabgan against the best baseline on each table."""
    frame = pd.DataFrame(results)
    mean = frame.groupby(["table", "generator"], sort=False).mean(numeric_only=True)
    lines, detections, tstr_gaps, ceiling_gaps, wins = [], [], [], [], 0
    for table in frame["table"].unique():
        ours = mean.loc[(table, "tabgan")]
        others = mean.loc[table].loc[[g for g in BASELINES if g in mean.loc[table].index]]
        if others.empty:
            lines.append(f"- {table}: no baseline in these results (detection {ours['detection_auc']:.3f}, "
                         f"TSTR {ours['tstr_synthetic_auc']:.3f}, quality {ours['quality']:.3f})")
            continue
        best_detection = others["detection_auc"].min()
        wins += int(ours["detection_auc"] < best_detection)
        detections.append(ours["detection_auc"])
        tstr_gaps.append(others["tstr_synthetic_auc"].max() - ours["tstr_synthetic_auc"])
        ceiling_gaps.append(ours["tstr_real_auc"] - ours["tstr_synthetic_auc"])
        lines.append(f"- {table}: detection {ours['detection_auc']:.3f} (best baseline "
                     f"{others['detection_auc'].idxmin()} {best_detection:.3f}); TSTR {ours['tstr_synthetic_auc']:.3f} "
                     f"(best baseline {others['tstr_synthetic_auc'].idxmax()} {others['tstr_synthetic_auc'].max():.3f}, "
                     f"ceiling {ours['tstr_real_auc']:.3f}); quality {ours['quality']:.3f}; "
                     f"gate passed {frame[(frame.table == table) & (frame.generator == 'tabgan')]['gate_passed'].all()}; "
                     f"CPU {ours['cpu_s']:.1f} s")
    lines.append(f"tabgan's detection below every baseline's on {wins} of {len(detections)} tables; median "
                 f"detection {np.median(detections):.3f}; median TSTR gap to the best baseline "
                 f"{np.median(tstr_gaps):+.3f}, to the ceiling {np.median(ceiling_gaps):+.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=TABLES)
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=GENERATORS)
    parser.add_argument("--json", type=Path, help="write every run and the machine here")
    parser.add_argument("--development", action="store_true",
                        help="score on a 30 %% slice of each training part, never the holdout (for design choices)")
    parser.add_argument("--tabgan-params", type=json.loads, default={},
                        help='JSON of TabGAN parameters to try, e.g. \'{"target_loss": 0}\'')
    parser.add_argument("--summarise", type=Path, nargs="+",
                        help="print the tables of earlier runs' JSON, run nothing; with several files, a later "
                             "file's run of the same table, generator and seed replaces an earlier one's")
    args = parser.parse_args()
    if args.summarise:
        merged = {}
        for path in args.summarise:
            for run in json.loads(path.read_text())["runs"]:
                merged[(run["table"], run["generator"], run["seed"])] = run
        results = list(merged.values())
        print(summary_table(results) + "\n\n" + against_the_bars(results))
        return
    if args.child:
        print(json.dumps(fit_worker(json.loads(Path(args.child).read_text()))))
        return
    results = []
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="small-tables-") as tmp:  # synthetic and split data of public tables
        for table in args.tables:
            results += run_table(table, args.seeds, args.generators, Path(tmp), args.development,
                                 args.tabgan_params)
            if args.json:  # after every table, so a long run's finished tables are kept
                args.json.write_text(json.dumps({"machine": machine, "runs": results}, indent=1))
    print(summary_table(results) + "\n\n" + against_the_bars(results))


if __name__ == "__main__":
    main()
