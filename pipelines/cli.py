"""`synthaug`: the command line front of the pipeline.

Bad input is one line on stderr and exit 2; a rejected gate prints the
summary and exits 1; stdout carries only the result (JSON with `--json`).
"""

from __future__ import annotations

import inspect
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

from synth.errors import InputError  # noqa: E402

SERVED_BY = "this process"  # or the warm process beside the local server (pipelines/warm_runner.py)
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
    """Validate, load, split and check the data (fast, before any server starts), run the flow on the
    prepared folder (so the data is read and split once), report."""
    started = time.perf_counter()
    from pipelines.run import prepare
    from pipelines.settings import Settings, build_request
    from pipelines.workspace import Workspace

    settings = Settings.from_env()
    with ExitStack() as stack:
        try:
            request = build_request(**fields)
            # prepared in the state folder's scratch, never the system temp folder; the flow moves it
            # into its run folder, and a refusal here leaves nothing behind
            ws = Workspace(stack.enter_context(settings.scratch("prepare")) / "run")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepared_s = prepare(request, ws, settings)
        except InputError as exc:
            fail(str(exc))
        server_start_s = _prefect_server(settings, stack)
        if sys.stderr.isatty():  # the live display; stdout keeps only the result
            from pipelines.progress_display import TerminalProgress
            from synth import progress

            stack.enter_context(progress.listening(stack.enter_context(TerminalProgress())))
        from pipelines.flow import augment_dataset

        state = augment_dataset(**request.model_dump(), prepared=str(ws.root), return_state=True)
        summary = flow_summary(state.result(raise_on_failure=False))
    timings = summary.setdefault("timings", {})
    timings.update({stage: round(seconds, 3) for stage, seconds in prepared_s.items()})
    if server_start_s:  # the first request of a state folder starts the local server; later ones do not
        timings["prefect_server_start"] = round(server_start_s, 3)
    # everything the stages did not spend: imports, Prefect's server and bookkeeping
    timings["overhead"] = round(time.perf_counter() - started - sum(timings.values()), 3)
    summary["runner"] = SERVED_BY
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


def request_options() -> list[inspect.Parameter]:
    """`augment`'s options: one per request field the command line offers, its default, bounds and
    help from `AugmentRequest`; a mapping field is a repeatable COLUMN=VALUE option named in the
    singular (`--condition`), a two-valued field with a `flag` an on/off option (`--synthetic-only`)."""
    from pipelines.settings import AugmentRequest

    options = []
    for name, field in AugmentRequest.model_fields.items():
        extra = field.json_schema_extra
        if not extra["cli"]:
            continue
        annotation, default = field.annotation, ... if field.is_required() else field.get_default(call_default_factory=True)
        if extra["flag"]:
            name, annotation, default = extra["flag"], bool, False
        elif annotation == dict[str, str]:
            name, annotation, default = name.removesuffix("s"), list[str], []
        options.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                         default=typer.Option(default, help=field.description)))
    return options


def request_fields(options: dict) -> dict:
    """The request's fields from `augment`'s options (the inverse of `request_options`)."""
    from pipelines.settings import AugmentRequest, parse_conditions

    fields = {}
    for name, field in AugmentRequest.model_fields.items():
        extra = field.json_schema_extra
        if not extra["cli"]:
            continue
        if extra["flag"]:
            fields[name] = extra["flag"] if options[extra["flag"]] else field.default
        elif field.annotation == dict[str, str]:
            fields[name] = parse_conditions(options[name.removesuffix("s")])
        else:
            fields[name] = options[name]
    return fields


def augment(as_json: bool = False, **options) -> None:
    """Train a conditional generator on a table or an image set, score it, and publish an augmented dataset."""
    try:
        fields = request_fields(options)
    except InputError as exc:
        fail(str(exc))
    run_request(fields, as_json)


augment.__signature__ = inspect.Signature([
    *request_options(),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                      default=typer.Option(False, "--json", help="Print one JSON summary on stdout"))])
app.command()(augment)


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
    from evaluation.assessment import assess_tables
    from evaluation.gate import GateThresholds
    from synth.schema import infer_schema
    from synth.tables import load_table

    try:
        train_rows, holdout_rows, synthetic_rows = (load_table(p) for p in (train, holdout, synthetic))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            schema = infer_schema(train_rows, target=target, sensitive=sensitive)
        scores = assess_tables(train_rows, holdout_rows, synthetic_rows, schema, GateThresholds(), out,
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
def stage(name: str = typer.Argument(..., help="prepare, train, sample, evaluate or publish"),
          params: Path = typer.Option(Path("params.yaml"), help="Stage parameters"),
          workspace: Path = typer.Option(Path("build"), help="Folder for the stages' outputs")):
    """Run one stage of the run policy on `params.yaml` (what `dvc repro` calls); `publish` prints the
    outcome and exits 1 when the gate rejected."""
    from pipelines.run import DVC_STAGES
    from pipelines.settings import Settings, request_from_params
    from pipelines.workspace import Workspace

    if name not in DVC_STAGES:
        fail(f"unknown stage {name!r}; stages: {', '.join(DVC_STAGES)}")
    try:
        outcome = DVC_STAGES[name](request_from_params(params), Workspace(workspace), Settings.from_env())
    except InputError as exc:
        fail(str(exc))
    if name == "publish":  # the run's summary: published, unchanged, or rejected (exit 1)
        report_outcome(outcome, as_json=False)


def main(forward_to_warm: bool = True) -> int:
    """Run the CLI; a malformed command line (`--rows abc`, an unknown option) is one line and exit 2,
    not the boxed usage message (Typer raises its own copy of Click's UsageError: matched by name).
    `augment` runs in the local server's warm process when one serves this state folder."""
    if forward_to_warm:
        code = _in_warm_process(sys.argv[1:])
        if code is not None:
            return code
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


@app.command("warm-process", hidden=True)
def warm_process(folder: Path = typer.Option(..., help="The local server's folder")):
    """The requests' warm process beside the local Prefect server (its supervisor starts it)."""
    from pipelines import warm_runner

    warm_runner.serve(folder.resolve(), _run_as_warm_child)


def _run_as_warm_child() -> int:
    global SERVED_BY
    SERVED_BY = "warm process"
    return main(forward_to_warm=False)


def _in_warm_process(argv: list[str]) -> int | None:
    """The exit status of `argv` run by the state folder's warm process, or None to run it here."""
    from pipelines import local_server, warm_runner
    from pipelines.settings import Settings

    if not argv or argv[0] not in warm_runner.FORWARDED or not (local_server.wanted() and local_server.warm_wanted()):
        return None  # decided before reading settings: other commands never pay for it
    return warm_runner.forward(argv, local_server.home(Settings.from_env().state_dir))


if __name__ == "__main__":
    sys.exit(main())
