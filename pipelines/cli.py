"""`synthaug`: the command line front of the pipeline.

Bad input is one line on stderr and exit 2; a rejected gate prints the
summary and exits 1; stdout carries only the result (JSON with `--json`).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from contextlib import ExitStack
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


def _prefect_server(settings, stack: ExitStack) -> float:
    """Without a configured server: the state folder's local server (started if none answers), or
    Prefect's per-process temporary one on request, its database in the state folder too.
    Returns the seconds spent starting a server this request will not pay again."""
    from pipelines import local_server

    if local_server.wanted():
        try:
            return stack.enter_context(local_server.local_server(settings.state_dir))
        except InputError as exc:
            fail(str(exc))
    if not os.environ.get("PREFECT_API_URL") and not os.environ.get("PREFECT_HOME"):
        home = local_server.home(settings.state_dir)
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)
    return 0.0


def run_request(fields: dict, as_json: bool) -> None:
    """Validate, check the data (fast, before any server starts), run the flow, report."""
    started = time.perf_counter()
    from pipelines import stages
    from pipelines.publishing import check_registry
    from pipelines.settings import Settings, build_request
    from pipelines.workspace import Workspace

    settings = Settings.from_env()
    try:
        request = build_request(**fields)
        check_registry(settings)
        # the check's copy of the data lives in the state folder's scratch, never the system temp folder
        with settings.scratch("check") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check = Workspace(tmp)
            stages.load(request, check)
            stages.split(request, check)
            stages.check_resources(request, check, settings)
    except InputError as exc:
        fail(str(exc))
    with ExitStack() as stack:
        server_start_s = _prefect_server(settings, stack)
        if sys.stderr.isatty():  # the live display; stdout keeps only the result
            from pipelines.progress_display import TerminalProgress
            from synth import progress

            stack.enter_context(progress.listening(stack.enter_context(TerminalProgress())))
        from pipelines.flow import augment_dataset

        state = augment_dataset(**request.model_dump(), return_state=True)
        summary = flow_summary(state.result(raise_on_failure=False))
    timings = summary.setdefault("timings", {})
    if server_start_s:  # the first request of a state folder starts the local server; later ones do not
        timings["prefect_server_start"] = round(server_start_s, 3)
    # everything the stages did not spend: imports, the pre-check, Prefect's server and bookkeeping
    timings["overhead"] = round(time.perf_counter() - started - sum(timings.values()), 3)
    report_outcome(summary, as_json)


def flow_summary(result, where: str = "") -> dict:
    """The summary a finished flow run left: its return value, or the one a rejection carries;
    a failure is one line, prefixed with `where` it happened."""
    from pipelines.summary import GateRejected

    if isinstance(result, GateRejected):
        return result.summary
    if isinstance(result, BaseException) or not isinstance(result, dict):
        line = str(result).splitlines()[0] if str(result) else type(result).__name__
        fail(f"{where}: {line}" if where else line)
    return result


def report_outcome(summary: dict, as_json: bool, head: list[str] | None = None, tail: list[str] | None = None) -> None:
    """The JSON summary, or the human lines with the gate's reasons; exit 1 when the gate rejected.
    Without `head`/`tail`: a flow's summary, its status line and where to look."""
    from pipelines.summary import where_to_look

    if head is None:
        head, tail = [f"{summary['name']}: {summary['status']}"], where_to_look(summary)
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
    candidates: int = typer.Option(1, help="Train this many seeds in parallel on Dask; publish the best passing one"),
    column_type: list[str] = typer.Option([], help="COLUMN=KIND override (numeric, categorical, boolean, datetime, id)"),
    sensitive: list[str] = typer.Option([], help="Column scored for attribute inference (repeatable)"),
    synthetic_only: bool = typer.Option(False, help="Publish only the synthetic rows, no real ones"),
    iterations: int = typer.Option(1000, help="Images: GAN training steps (batch 64)"),
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
                 "dp_epsilon": dp_epsilon, "private": private, "candidates": candidates, "column_types": column_types, "sensitive": sensitive,
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


server_app = typer.Typer(help="The local Prefect server that requests without PREFECT_API_URL share.")
app.add_typer(server_app, name="server")


@server_app.command("status")
def server_status():
    """Where this state folder's local Prefect server answers, if one is running."""
    from pipelines import local_server
    from pipelines.settings import Settings

    info = local_server.running(Settings.from_env().state_dir)
    typer.echo(f"running at {info['url'].removesuffix('/api')} (supervisor pid {info['pid']}, "
               f"database in {info['home']})" if info else "no local Prefect server is running")


@server_app.command("stop")
def server_stop():
    """Stop this state folder's local Prefect server now (the next request starts another)."""
    from pipelines import local_server
    from pipelines.settings import Settings

    stopped = local_server.stop(Settings.from_env().state_dir)
    typer.echo("stopped the local Prefect server" if stopped else "no local Prefect server was running")


def _require_server() -> str:
    """The Prefect server's URL, answering: a missing or dead server is one line, not a traceback."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        fail("set PREFECT_API_URL to a Prefect server (start one with `prefect server start`)")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        fail(f"the Prefect server at {url} does not answer: {str(error).splitlines()[0]}")
    return url


def _scheduled_deployments(datasets: Path) -> list[dict]:
    """One deployment `augment-dataset/<name>` per dataset of the file: its cron and request."""
    from pipelines.settings import scheduled_datasets

    try:
        schedules = scheduled_datasets(datasets)
    except InputError as exc:
        fail(str(exc))
    return [{"name": name, "cron": cron,
             "description": f"Scheduled refresh of {name}; retrains only when its data or settings changed since "
                            "the newest published version.",
             "parameters": {**request.model_dump(mode="json"), "skip_unchanged": True}}
            for name, (cron, request) in schedules.items()]


@app.command()
def serve(datasets: Path = typer.Option(Path("datasets.yaml"), help="Scheduled datasets: name, cron and request"),
          limit: int = typer.Option(1, min=1, help="Flow runs at once in this process")):
    """Serve one scheduled deployment `augment-dataset/<name>` per dataset until stopped (Ctrl-C)."""
    deployments = _scheduled_deployments(datasets)
    _require_server()
    from prefect import serve as prefect_serve

    from pipelines.flow import augment_dataset

    prefect_serve(*(augment_dataset.to_deployment(**d) for d in deployments), limit=limit,
                  print_starting_message=True)


@app.command()
def deploy(pool: str = typer.Option(..., help="Work pool (type process) the deployments go to; created if missing"),
           datasets: Path = typer.Option(Path("datasets.yaml"), help="Scheduled datasets: name, cron and request"),
           source: Optional[str] = typer.Option(None, help="Where workers get the code: a git URL they clone, or a "
                                                            "path they all see (default: this checkout)")):
    """Register the same scheduled deployments on a work pool and return: workers started with the
    project's environment (`prefect worker start --pool POOL`) run them from `source`."""
    deployments = _scheduled_deployments(datasets)
    _require_server()
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    from pipelines.flow import augment_dataset

    source = source or str(Path(__file__).resolve().parents[1])
    try:
        flow = augment_dataset.from_source(source=source, entrypoint="pipelines/flow.py:augment_dataset")
    except Exception as exc:  # a path or repository without the flow; Prefect raises several types
        fail(f"cannot load pipelines/flow.py:augment_dataset from {source}: {str(exc).splitlines()[0]}")
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    for d in deployments:
        flow.deploy(**d, work_pool_name=pool, print_next_steps=False)
        typer.echo(f"deployment augment-dataset/{d['name']} on work pool {pool} ({d['cron']})")


@app.command()
def request(
    name: str = typer.Argument(..., help="Dataset name: the deployment augment-dataset/NAME that `synthaug serve` runs"),
    rows: Optional[int] = typer.Option(None, help="Synthetic rows (default: the deployment's)"),
    condition: list[str] = typer.Option([], help="COLUMN=VALUE, replaces the deployment's conditions (repeatable)"),
    seed: Optional[int] = typer.Option(None, help="Seed (default: the deployment's)"),
    epochs: Optional[int] = typer.Option(None, help="Training epochs (default: the deployment's)"),
    timeout_s: float = typer.Option(3600, help="Give up waiting after this many seconds"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout"),
):
    """Request a dataset from a served deployment: validate here, run it on the server, wait, print the summary.

    A request equal to the newest published version's (data and settings) returns that version at once."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from pipelines.settings import build_request, parse_conditions

    url = _require_server()
    deployment_name = f"augment-dataset/{name}"
    try:
        with get_client(sync_client=True) as client:
            parameters = dict(client.read_deployment_by_name(deployment_name).parameters)
    except ObjectNotFound:
        fail(f"no deployment {deployment_name} on {url}; is `synthaug serve` running, or `synthaug deploy` done, "
             "with that dataset?")
    overrides = {"rows": rows, "seed": seed, "epochs": epochs}
    parameters.update({k: v for k, v in overrides.items() if v is not None})
    skip_unchanged = parameters.pop("skip_unchanged", False)
    try:
        if condition:
            parameters["conditions"] = parse_conditions(condition)
        fields = build_request(**parameters).model_dump(mode="json")
    except InputError as exc:
        fail(str(exc))
    flow_run = run_deployment(deployment_name, parameters={**fields, "skip_unchanged": skip_unchanged},
                              timeout=timeout_s)
    if not flow_run.state.is_final():
        fail(f"flow run {flow_run.name} is still {flow_run.state.name} after {timeout_s:g} s; it goes on on the server")
    report_outcome(flow_summary(flow_run.state.result(raise_on_failure=False), f"flow run {flow_run.name}"), as_json)


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


def main() -> int:
    """Run the CLI; a malformed command line (`--rows abc`, an unknown option) is one line and exit 2,
    not the boxed usage message (Typer raises its own copy of Click's UsageError: matched by name)."""
    try:
        return app(standalone_mode=False) or 0
    except typer.Exit as exit_:
        return exit_.exit_code
    except Exception as exc:
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "NoArgsIsHelpError" in names:  # the help is already printed
            return 0
        if "UsageError" not in names:
            raise
        typer.echo(f"error: {exc.format_message()}", err=True)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
