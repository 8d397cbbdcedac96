"""`synthaug`: the command line front of the pipeline.

Bad input is one line on stderr and exit 2; a rejected gate prints the
summary and exits 1; stdout carries only the result (JSON with `--json`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import typer

QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "GIT_PYTHON_REFRESH": "quiet",
}
for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)

from pipelines.settings import DEFAULT_ENGINE  # noqa: E402
from synth.errors import InputError  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Train conditional GANs on scarce data, score them, and publish augmented datasets.")
EXIT_INPUT, EXIT_REJECTED = 2, 1


def fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_INPUT)


def _prefect_home() -> None:
    """Without a configured Prefect server, keep Prefect's database in this folder's state dir."""
    if not os.environ.get("PREFECT_API_URL") and not os.environ.get("PREFECT_HOME"):
        from pipelines.settings import Settings

        home = Settings.from_env().state_dir / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)


def run_request(fields: dict, as_json: bool) -> None:
    """Validate, check the data (fast, before any server starts), run the flow, report."""
    from pipelines import stages
    from pipelines.settings import build_request
    from pipelines.workspace import Workspace

    try:
        request = build_request(**fields)
        with tempfile.TemporaryDirectory(prefix="synthaug-check-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check = Workspace(tmp)
            stages.load(request, check)
            stages.split(request, check)
    except InputError as exc:
        fail(str(exc))
    _prefect_home()
    from pipelines.flow import augment_dataset
    from pipelines.summary import where_to_look

    state = augment_dataset(**request.model_dump(), return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        fail(str(result).splitlines()[0] if str(result) else type(result).__name__)
    report_outcome(result, as_json, [f"{result['name']}: {result['status']}"], where_to_look(result))


def report_outcome(summary: dict, as_json: bool, head: list[str], tail: list[str]) -> None:
    """The JSON summary, or the human lines with the gate's reasons; exit 1 when the gate rejected."""
    if as_json:
        typer.echo(json.dumps(summary, indent=1, default=str))
    else:
        for line in [*head, *(f"  rejected: {r}" for r in summary["gate"]["reasons"]), *tail]:
            typer.echo(line)
    if not summary["gate"]["passed"]:
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def augment(
    data: str = typer.Option(..., help="CSV or Parquet path, or builtin:NAME"),
    target: Optional[str] = typer.Option(None, help="Outcome column (categorical); stratifies the split"),
    rows: int = typer.Option(1000, help="Synthetic rows to generate"),
    condition: list[str] = typer.Option([], help="COLUMN=VALUE every synthetic row must satisfy (repeatable)"),
    name: Optional[str] = typer.Option(None, help="Dataset name in the registry (default: from --data)"),
    seed: int = typer.Option(0, help="One seed for split, training and sampling"),
    epochs: int = typer.Option(300, help="Training epochs"),
    batch_size: int = typer.Option(500, help="Training batch size"),
    engine: str = typer.Option(DEFAULT_ENGINE, help="Tabular engine: tabgan (ours) or ctgan (the package)"),
    time_budget_s: Optional[float] = typer.Option(None, help="tabgan: stop training after this many seconds"),
    patience: Optional[int] = typer.Option(None, help="tabgan: stop after this many validations without gain"),
    dp_epsilon: Optional[float] = typer.Option(None, help="tabgan: differentially private training within this "
                                                          "epsilon (delta 1e-5)"),
    private: bool = typer.Option(False, help="The data is private: refuse to publish without --dp-epsilon"),
    column_type: list[str] = typer.Option([], help="COLUMN=KIND override (numeric, categorical, boolean, datetime, id)"),
    sensitive: list[str] = typer.Option([], help="Column scored for attribute inference (repeatable)"),
    synthetic_only: bool = typer.Option(False, help="Publish only the synthetic rows, no real ones"),
    iterations: int = typer.Option(500, help="Images: GAN training steps (batch 64)"),
    image_size: Optional[int] = typer.Option(None, help="Images: resize to this square size"),
    skip_corrupt: bool = typer.Option(False, help="Images: skip unreadable files instead of refusing"),
    balance: bool = typer.Option(False, help="Images: bring every class up to the largest"),
    curate: Optional[float] = typer.Option(None, help="Images: keep only images a real-data classifier assigns "
                                                      "to their class with this confidence"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout"),
):
    """Train a conditional generator on a table or an image set, score it, and publish an augmented dataset."""
    from pipelines.settings import parse_conditions

    try:
        conditions, column_types = parse_conditions(condition), parse_conditions(column_type)
    except InputError as exc:
        fail(str(exc))
    run_request({"data": data, "target": target, "rows": rows, "conditions": conditions, "name": name,
                 "seed": seed, "epochs": epochs, "batch_size": batch_size, "engine": engine,
                 "time_budget_s": time_budget_s, "patience": patience,
                 "dp_epsilon": dp_epsilon, "private": private, "column_types": column_types, "sensitive": sensitive,
                 "publish": "synthetic_only" if synthetic_only else "augmented", "iterations": iterations,
                 "image_size": image_size, "skip_corrupt": skip_corrupt, "balance": balance, "curate": curate},
                as_json)


DEMO_REQUESTS = (
    {"data": "builtin:breast_cancer", "target": "diagnosis", "rows": 500, "conditions": {"diagnosis": "malignant"},
     "name": "breast_cancer"},
    {"data": "builtin:breastmnist", "target": "label", "rows": 300, "conditions": {"label": "0"},
     "name": "breastmnist"},
)


@app.command()
def demo():
    """The built-in requests: 500 malignant breast-cancer records, then 300 malignant BreastMNIST images."""
    from synth.images import breastmnist_path

    outcomes = []
    for fields in DEMO_REQUESTS:
        if fields["data"] == "builtin:breastmnist":
            try:
                breastmnist_path()
            except InputError as exc:
                typer.echo(f"skipped the image request: {exc}", err=True)
                continue
        try:
            run_request(fields, as_json=False)
            outcomes.append(0)
        except typer.Exit as exit_:
            outcomes.append(exit_.exit_code)
    raise typer.Exit(max(outcomes, default=0))


@app.command()
def evaluate(
    train: str = typer.Option(..., help="Real rows the generator was trained on (CSV or Parquet)"),
    holdout: str = typer.Option(..., help="Real rows the generator never saw"),
    synthetic: str = typer.Option(..., help="Synthetic rows, made by any tool"),
    target: Optional[str] = typer.Option(None, help="Outcome column for utility scores"),
    sensitive: list[str] = typer.Option([], help="Column scored for attribute inference (repeatable)"),
    out: Path = typer.Option(Path("synthaug-evaluation"), help="Folder for metrics.json, figures/ and report.html"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout"),
):
    """Score synthetic data made anywhere with the same scores, gate and report; exit 1 if the gate rejects."""
    from pipelines.settings import GateSettings
    from pipelines.stages import assess
    from synth.schema import infer_schema
    from synth.tables import load_table

    try:
        train_rows, holdout_rows, synthetic_rows = (load_table(p) for p in (train, holdout, synthetic))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema = infer_schema(train_rows, target=target, sensitive=sensitive)
        scores = assess(train_rows, holdout_rows, synthetic_rows, schema, GateSettings().thresholds(), out,
                        name=Path(synthetic).stem)
    except InputError as exc:
        fail(str(exc))
    status = "passed" if scores["gate"]["passed"] else "rejected"
    summary = {"status": status, "metrics": scores["metrics"], "gate": scores["gate"], "rows": scores["rows"],
               "report": str((out / "report.html").resolve())}
    report_outcome(summary, as_json, [f"{status}: report at {summary['report']}"], [])


@app.command()
def stage(name: str = typer.Argument(..., help="load, split, train, sample, evaluate or package"),
          params: Path = typer.Option(Path("params.yaml"), help="Stage parameters"),
          workspace: Path = typer.Option(Path("build"), help="Folder for the stages' outputs")):
    """Run one stage on `params.yaml` (what `dvc repro` calls)."""
    from pipelines import stages
    from pipelines.settings import request_from_params
    from pipelines.workspace import Workspace

    if name not in stages.STAGES:
        fail(f"unknown stage {name!r}; stages: {', '.join(stages.STAGES)}")
    try:
        stages.STAGES[name](request_from_params(params), Workspace(workspace))
    except InputError as exc:
        fail(str(exc))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
