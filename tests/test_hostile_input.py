"""Hostile input and leakage, through the CLI: refused up front (one line, exit 2, nothing trained,
published, registered or left in a scratch folder), or handled; and no real row or image where the
user did not ask to publish one."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_flow import SYNTHAUG, cli, dvc_get, dvc_get_file, registered_versions, registry_tags


@pytest.fixture(scope="module")
def api_url(prefect_harness):
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def left_behind(state: Path, system_tmp: Path) -> list[Path]:
    """Scratch and staging folders a request may have left: none may survive it (torch's kernel
    cache, compiled code and no data, is not ours to remove)."""
    found = [p for p in system_tmp.iterdir() if not p.name.startswith("torchinductor_")] if system_tmp.exists() else []
    if (state / "tmp").exists():
        found += list((state / "tmp").iterdir())
    return found + list(state.glob("registry.git.init-*"))


def tables(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 140
    base = pd.DataFrame({"age": rng.integers(20, 80, n), "bp": rng.normal(120, 15, n).round(1),
                         "outcome": rng.choice(["yes", "no"], n)})
    emails = [f"patient{i}@clinic.example" for i in range(n - 1)] + ["patient7@clinic.example"]
    wide = pd.DataFrame(rng.normal(size=(60, 5000)).round(3), columns=[f"c{i}" for i in range(5000)])
    files = {
        "target_only": base[["outcome"]],
        "emails": base.assign(email=emails),
        "mathtext": base.rename(columns={"bp": "$\\frac{a}{$"}).assign(unit=rng.choice(["$x$", "mm$Hg"], n)),
        "script": base.rename(columns={"age": "<script>alert(1)</script>"}),
        "wide": wide.assign(outcome=["a", "b"] * 30),
    }
    paths = {}
    for name, frame in files.items():
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


@pytest.mark.parametrize("case,args,env,message", [
    ("name_dots", ["--data", "builtin:breast_cancer", "--name", "a..b"], {}, "not a valid git tag name"),
    ("name_newline", ["--data", "builtin:breast_cancer", "--name", "abc\n"], {}, "invalid name"),
    ("registry_file", ["--data", "builtin:breast_cancer"], {"SYNTHAUG_REGISTRY_URL": "{file}"}, "is a file"),
    ("registry_folder", ["--data", "builtin:breast_cancer"], {"SYNTHAUG_REGISTRY_URL": "{folder}"},
     "not a bare git repository"),
    ("target_only", ["--data", "{target_only}", "--target", "outcome"], {}, "no column besides the target"),
    ("translate_synthetic_only", ["--data", "builtin:breastmnist", "--engine", "translate", "--synthetic-only"], {},
     "derives each image from a real training image"),
    ("translate_source_condition", ["--data", "builtin:breastmnist", "--engine", "translate", "--condition",
                                    "label=1"], {}, "this translation makes 'malignant' images only"),
    ("translate_on_a_table", ["--data", "builtin:breast_cancer", "--engine", "translate"], {}, "is for image sets"),
    ("email_as_category", ["--data", "{emails}", "--column-type", "email=categorical"], {},
     "would be memorised"),
    ("rows_text", ["--data", "builtin:breast_cancer", "--rows", "abc"], {}, "Invalid value for '--rows'"),
    ("budget_nan", ["--data", "builtin:breast_cancer", "--time-budget-s", "nan"], {}, "finite number"),
    ("wide", ["--data", "{wide}", "--target", "outcome"], {"SYNTHAUG_MAX_TRAIN_S": "600"},
     "refused before training: wide needs an estimated ~1,"),
])
def test_refused_before_training_with_one_line(tmp_path, api_url, case, args, env, message):
    state, system_tmp = tmp_path / ".synthaug", tmp_path / "system-tmp"
    system_tmp.mkdir()
    paths = {k: str(v) for k, v in tables(tmp_path).items()}
    (tmp_path / "plain-file").write_text("not a repository")
    (tmp_path / "other-folder").mkdir()
    (tmp_path / "other-folder" / "notes.txt").write_text("someone's files")
    paths.update(file=str(tmp_path / "plain-file"), folder=str(tmp_path / "other-folder"))
    args = [a.format(**paths) for a in args]
    env = {k: v.format(**paths) for k, v in env.items()}
    started = time.monotonic()
    done = cli(["augment", *args, "--json"], state, api_url, cwd=tmp_path, env={**env, "TMPDIR": str(system_tmp)})
    assert done.returncode == 2 and done.stdout == "", done.stderr[-2000:]
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (state / "runs").exists()  # no flow ran, so no training stage
    assert time.monotonic() - started < 60
    assert registry_tags(state) == [] and registered_versions(state) == []
    assert left_behind(state, system_tmp) == []
    assert (tmp_path / "other-folder" / "notes.txt").read_text() == "someone's files"


def publish(data: Path, state: Path, api_url: str, *extra: str) -> dict:
    """A short request that must publish; its JSON summary."""
    done = cli(["augment", "--data", str(data), "--target", "outcome", "--rows", "60", "--epochs", "5", *extra,
                "--json"], state, api_url, cwd=state.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "published"
    return summary


def test_user_text_in_figures_and_metric_keys_is_handled(tmp_path, api_url):
    """Mathtext in a column name and category values; a sensitive column named like a script tag."""
    state = tmp_path / ".synthaug"
    paths = tables(tmp_path)
    publish(paths["mathtext"], state, api_url)
    summary = publish(paths["script"], state, api_url, "--sensitive", "<script>alert(1)</script>")
    assert "privacy_attribute_advantage__script_alert_1___script_" in summary["metrics"]
    from mlflow import MlflowClient

    run = MlflowClient(summary["mlflow"]["tracking_uri"]).get_run(summary["mlflow"]["run_id"])
    assert "privacy_attribute_advantage__script_alert_1___script_" in run.data.metrics


def test_an_email_column_with_a_duplicate_is_never_modelled(tmp_path, api_url):
    state = tmp_path / ".synthaug"
    summary = publish(tables(tmp_path)["emails"], state, api_url)
    augmented = dvc_get(summary["registry"], "augmented.parquet", tmp_path / "a.parquet")
    assert "email" not in augmented.columns
    # not in the run folder, the MLflow artifacts, the model or the registry's storage
    leaks = [p for p in state.rglob("*") if p.is_file() and b"@clinic.example" in p.read_bytes()]
    assert leaks == []


def test_synthetic_only_table_leaves_no_real_row_on_disk(tmp_path, api_url, breast_cancer):
    state, system_tmp = tmp_path / ".synthaug", tmp_path / "system-tmp"
    system_tmp.mkdir()
    done = cli(["augment", "--data", "builtin:breast_cancer", "--target", "diagnosis", "--rows", "80", "--epochs", "5",
                "--synthetic-only", "--json"], state, api_url, cwd=tmp_path, env={"TMPDIR": str(system_tmp)})
    assert done.returncode == 0, done.stderr[-3000:]
    real = {tuple(np.round(row, 6)) for row in breast_cancer.drop(columns="diagnosis").to_numpy()}
    tables_on_disk = [p for p in [*state.rglob("*"), *system_tmp.rglob("*")]
                      if p.is_file() and p.suffix in (".parquet", ".csv")]
    assert tables_on_disk  # the synthetic rows are there (run folder, registry remote)
    for path in tables_on_disk:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        numbers = frame[[c for c in breast_cancer.columns if c != "diagnosis" and c in frame]]
        assert not any(tuple(np.round(row, 6)) in real for row in numbers.to_numpy()), path
    remote_objects = [p for p in (state / "dvc-remote").rglob("*") if p.is_file()]
    for path in remote_objects:  # DVC stores files by hash: read the ones that are parquet
        if path.read_bytes()[:4] == b"PAR1":
            numbers = pd.read_parquet(path)[[c for c in breast_cancer.columns if c != "diagnosis"]]
            assert not any(tuple(np.round(row, 6)) in real for row in numbers.to_numpy())
    assert left_behind(state, system_tmp) == []


def embedded_images(html: str) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"))
            for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def shown_images(figure: np.ndarray) -> list[np.ndarray]:
    """The image cells of a rendered figure (square blocks of non-white pixels), each scaled back to
    28 x 28: on a figure drawn from real images, a cell matches its image within ~8 grey levels on
    average, other images differ by ~45 (checked below on a figure that does show real images)."""
    from PIL import Image
    from scipy import ndimage

    labels, _ = ndimage.label(figure < 250)
    cells = []
    for rows, cols in ndimage.find_objects(labels):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if h >= 20 and w >= 20 and 0.8 < h / w < 1.25:
            cells.append(np.asarray(Image.fromarray(figure[rows, cols]).resize((28, 28), Image.BOX), float))
    return cells


def shows_any(figures: list[np.ndarray], images: np.ndarray) -> bool:
    return any(np.abs(cell - images.astype(float)).mean(axis=(1, 2)).min() < 15
               for figure in figures for cell in shown_images(figure))


def test_the_real_image_detector_sees_real_images_in_a_figure():
    from evaluation import plots
    from tests.test_images import blobs

    real, other = blobs(10, 0), blobs(10, 1, seed=5)
    buffer = io.BytesIO()
    plots.image_grid([("real", real), ("synthetic", other)], "x").savefig(buffer, format="png", dpi=80)
    html = f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
    assert shows_any(embedded_images(html), real) and not shows_any(embedded_images(html), blobs(10, 0, seed=99))


def test_synthetic_only_images_publish_no_real_pixel(tmp_path, api_url):
    from tests.test_images import write_png_folder
    from synth.images import load_image_folder

    state, system_tmp = tmp_path / ".synthaug", tmp_path / "system-tmp"
    system_tmp.mkdir()
    folder = write_png_folder(tmp_path / "scans", per_class=30)
    done = cli(["augment", "--data", str(folder), "--target", "label", "--rows", "20", "--condition",
                "label=malignant", "--iterations", "15", "--synthetic-only", "--json"], state, api_url, cwd=tmp_path,
               env={"TMPDIR": str(system_tmp)})
    assert done.returncode in (0, 1), done.stderr[-3000:]
    summary = json.loads(done.stdout)
    real = load_image_folder(folder).images
    sheet = Path(summary["workspace"]) / "evaluation" / "report.html"
    html = sheet.read_text()
    assert set(re.findall(r'alt="([^"]+)"', html)) == {"dcr", "membership roc", "nearest pairs", "losses",
                                                       "samples per class"}
    figures = embedded_images(html)
    assert len(figures) >= 4
    assert not shows_any(figures, real)
    if summary["registry"]:
        published = dvc_get_file(summary["registry"], "datasheet.html", tmp_path / "sheet.html").read_text()
        assert published == html
    from mlflow import MlflowClient

    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    logged = {Path(f.path).name for f in client.list_artifacts(summary["mlflow"]["run_id"], "figures")}
    assert "real_vs_synthetic.png" not in logged
    for path in [*state.rglob("*.npz"), *system_tmp.rglob("*")]:
        if path.is_file() and path.suffix == ".npz":
            images = np.load(path)["images"]
            assert not any((images == image).all(axis=(1, 2)).any() for image in real), path
    assert left_behind(state, system_tmp) == []


def test_a_killed_request_is_marked_crashed_and_its_scratch_swept_at_the_next_start(tmp_path, api_url):
    """A request killed mid-training stays Running on the server until the next request's sweep marks
    it Crashed; a scratch folder left by a dead process (a publish killed during `dvc push`) goes too."""
    from prefect.client.orchestration import get_client

    state = tmp_path / ".synthaug"
    env = {**os.environ, "SYNTHAUG_STATE_DIR": str(state), "PREFECT_API_URL": api_url}
    env.pop("MLFLOW_TRACKING_URI", None)
    victim = subprocess.Popen([*SYNTHAUG, "augment", "--data", "builtin:breast_cancer", "--target", "diagnosis",
                               "--epochs", "5000", "--name", "killed"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not list(state.glob("runs/killed-*/model/generator")) and not list(state.glob("runs/killed-*/data/train.parquet")):
        assert victim.poll() is None and time.monotonic() < deadline, "the request never started training"
        time.sleep(1)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    [run_dir] = state.glob("runs/killed-*")
    flow_run_id = json.loads((run_dir / "owner.json").read_text())["flow_run_id"]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id).state.is_running()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = state / "tmp" / f"publish-{dead.pid}-x"
    (abandoned / "registry").mkdir(parents=True)
    (abandoned / "registry" / "augmented.parquet").write_bytes(b"real rows")

    done = cli(["augment", "--data", "builtin:breast_cancer", "--target", "diagnosis", "--rows", "50", "--epochs", "3",
                "--name", "next"], state, api_url, cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id).state.name == "Crashed"
    assert not abandoned.exists() and not (run_dir / "owner.json").exists()
    assert (run_dir / "data" / "train.parquet").exists()  # kept for a retry until the retention period ends
    old = time.time() - 25 * 3600
    os.utime(run_dir, (old, old))
    from pipelines import retention
    from pipelines.settings import Settings

    os.environ["SYNTHAUG_STATE_DIR"] = str(state)
    try:
        retention.sweep(Settings.from_env())
    finally:
        del os.environ["SYNTHAUG_STATE_DIR"]
    assert not (run_dir / "data" / "train.parquet").exists() and not (run_dir / "data" / "table.parquet").exists()


def test_four_first_requests_initialise_the_tracking_store_once(tmp_path):
    """Four processes opening a new SQLite MLflow store at once (two of four raised 'table ... already
    exists' before the first use was serialised)."""
    code = ("from pipelines.settings import Settings; from pipelines.tracking import _client; "
            "print(_client(Settings.from_env()).get_experiment_by_name('synthaug').experiment_id)")
    env = {**os.environ, "SYNTHAUG_STATE_DIR": str(tmp_path / ".synthaug")}
    env.pop("MLFLOW_TRACKING_URI", None)
    processes = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(__file__).parent.parent,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-1500:] for _, err in outputs]
    assert len({out.strip() for out, _ in outputs}) == 1
