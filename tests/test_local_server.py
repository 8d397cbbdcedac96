"""Requests without PREFECT_API_URL share one local Prefect server per state folder; progress shows
on a terminal and never in the JSON on stdout."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines import local_server

SYNTHAUG = [sys.executable, "-m", "pipelines.cli"]
REQUEST = ["augment", "--data", "builtin:breast_cancer", "--target", "diagnosis", "--epochs", "2", "--rows", "50",
           "--json"]


@pytest.fixture
def local_env(tmp_path):
    """No configured server: the state folder's local one; stopped at the end whatever happens."""
    state = tmp_path / "state"
    env = {**os.environ, "SYNTHAUG_STATE_DIR": str(state), "SYNTHAUG_PREFECT_IDLE_MINUTES": "2"}
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "SYNTHAUG_PREFECT_SERVER", "PREFECT_HOME"):
        env.pop(key, None)
    yield state, env
    local_server.stop(state)


def run_on_terminal(args: list[str], env: dict, cwd: Path) -> tuple[int, str, str]:
    """The CLI with stderr on a pseudo-terminal (what a user sees) and stdout on a pipe."""
    import pty

    primary, secondary = pty.openpty()
    process = subprocess.Popen([*SYNTHAUG, *args], stdout=subprocess.PIPE, stderr=secondary, stdin=subprocess.DEVNULL,
                               env=env, cwd=cwd)
    os.close(secondary)
    seen = []
    while True:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen.append(chunk)
        elif process.poll() is not None:
            break
    stdout = process.stdout.read().decode()
    os.close(primary)
    return process.wait(timeout=60), stdout, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(seen).decode(errors="replace"))


def test_the_second_request_reuses_the_first_ones_local_server(local_env, tmp_path):
    state, env = local_env
    code, stdout, terminal = run_on_terminal(REQUEST, env, tmp_path)
    assert code == 0, terminal[-3000:]
    first = json.loads(stdout)  # exactly one JSON object, though the terminal showed a live display
    assert first["status"] == "published" and first["runner"] == "this process"
    assert first["timings"]["prefect_server_start"] > 0  # the first request says what it paid
    assert "started a local Prefect server" in terminal and "synthaug server stop" in terminal
    lines = terminal.replace("\r", "\n").splitlines()
    assert any(re.search(r"training .*2/2 epochs · G loss", line) for line in lines), terminal[-3000:]
    assert any(re.search(r"scoring .*3/3", line) for line in lines), terminal[-3000:]
    assert any(re.search(r"publishing .*breast_cancer-v1", line) for line in lines), terminal[-3000:]
    server = local_server.running(state)
    assert server is not None and Path(server["home"]) == state / "prefect"

    second = subprocess.run([*SYNTHAUG, *REQUEST], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    assert "prefect_server_start" not in summary["timings"] and "started a local" not in second.stderr
    assert "━" not in second.stderr  # no display without a terminal
    assert local_server.running(state) == server
    assert summary["runner"] == "warm process" and summary["timings"]["overhead"] < first["timings"]["overhead"]
    with urllib.request.urlopen(f"{server['url']}/flow_runs/filter", data=b"{}", timeout=10) as response:
        runs = json.loads(response.read())
    assert len([r for r in runs if r["state_type"] == "COMPLETED"]) == 2  # both tracked in its database

    stopped = subprocess.run([*SYNTHAUG, "server", "stop"], capture_output=True, text=True, env=env, timeout=60)
    assert stopped.stdout.strip() == "stopped the local Prefect server"
    assert local_server.running(state) is None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server['url']}/health", timeout=2)


def test_the_warm_process_runs_a_request_as_its_own_process_would(local_env, tmp_path):
    """Its child writes to the client's terminal (live display) and stdout (one JSON object), refuses bad
    input with one line and exit 2, and a request with other import-time settings runs in its own process."""
    state, env = local_env
    first = subprocess.run([*SYNTHAUG, *REQUEST], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert first.returncode == 0 and json.loads(first.stdout)["runner"] == "this process", first.stderr[-3000:]

    code, stdout, terminal = run_on_terminal([*REQUEST, "--rows", "40"], env, tmp_path)
    assert code == 0, terminal[-3000:]
    summary = json.loads(stdout)
    assert summary["runner"] == "warm process" and summary["rows"]["synthetic"] == 40
    lines = terminal.replace("\r", "\n").splitlines()
    assert any(re.search(r"training .*2/2 epochs · G loss", line) for line in lines), terminal[-3000:]
    assert any(re.search(r"publishing .*breast_cancer-v2", line) for line in lines), terminal[-3000:]

    bad = subprocess.run([*SYNTHAUG, "augment", "--data", str(tmp_path / "missing.csv"), "--json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("error: ")

    # torch reads it on import; other than the warm process's (earlier tests' Dask clusters may have set it)
    threads = "3" if env.get("OMP_NUM_THREADS") != "3" else "2"
    other = subprocess.run([*SYNTHAUG, *REQUEST], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                           env={**env, "OMP_NUM_THREADS": threads})
    assert other.returncode == 0 and json.loads(other.stdout)["runner"] == "this process", other.stderr[-3000:]
    assert "declined a request: other import-time settings" in (state / "prefect" / "server.log").read_text()


def test_an_idle_local_server_stops_by_itself(tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("SYNTHAUG_PREFECT_IDLE_MINUTES", "0.05")  # 3 s
    configured = os.environ.pop("PREFECT_API_URL", None)
    try:
        with local_server.local_server(state) as start_s:
            assert start_s > 0
            info = local_server.running(state)
            time.sleep(8)  # longer than the idle time: a running request keeps it up
            assert local_server.running(state) == info
        deadline = time.monotonic() + 60
        while local_server.running(state) is not None and time.monotonic() < deadline:
            time.sleep(1)
        assert local_server.running(state) is None
        assert not (state / "prefect" / local_server.SERVER_FILE).exists()
    finally:
        local_server.stop(state)
        os.environ.pop("PREFECT_API_URL", None)
        if configured is not None:
            os.environ["PREFECT_API_URL"] = configured


def test_a_second_request_of_the_same_process_keeps_the_server_up_too(tmp_path, monkeypatch):
    """The demo runs two requests in one process: the second must mark itself running as the first did,
    or the supervisor stopped the server under it (seen: a long image request lost its server)."""
    state = tmp_path / "state"
    monkeypatch.setenv("SYNTHAUG_PREFECT_IDLE_MINUTES", "0.05")  # 3 s
    configured = os.environ.pop("PREFECT_API_URL", None)
    try:
        with local_server.local_server(state):
            info = local_server.running(state)
        assert "PREFECT_API_URL" not in os.environ  # this request's setting only
        assert local_server.wanted()
        with local_server.local_server(state) as start_s:
            assert start_s == 0 and os.environ["PREFECT_API_URL"] == info["url"]
            time.sleep(8)  # longer than the idle time since the first request ended
            assert local_server.running(state) == info
    finally:
        local_server.stop(state)
        os.environ.pop("PREFECT_API_URL", None)
        if configured is not None:
            os.environ["PREFECT_API_URL"] = configured
