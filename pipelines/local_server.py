"""One local Prefect server per state folder: started by the first request, reused by the next ones.

Without `PREFECT_API_URL`, Prefect starts a temporary server inside every process, and each
`synthaug augment` paid 15-30 s for it. Here the first request starts `prefect server start` in the
background (its SQLite database in `<state>/prefect`), and later requests on this machine connect to
it. A small supervisor process owns the server and stops it once no request has run for
`SYNTHAUG_PREFECT_IDLE_MINUTES` (15); `synthaug server stop` stops it at once. Beside the server it
starts the requests' warm process (`pipelines/warm_runner.py`), which the same idle time stops.

What it supports: sequential requests and a few at once. SQLite-backed Prefect servers answered
HTTP 503 under four concurrent flows in our measurements; for more, run a PostgreSQL-backed server
and set `PREFECT_API_URL` (README, "Running as a service"). `SYNTHAUG_PREFECT_SERVER=temporary`
restores Prefect's own per-process temporary server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from pipelines.retention import process_alive
from pipelines.settings import state_lock
from synth.errors import InputError

LOCK_NAME = "prefect-server"
SERVER_FILE = "server.json"
LAST_REQUEST_FILE = "last-request"
REQUESTS_DIR = "requests"  # one file per running request, named by its process id
STARTUP_TIMEOUT_S = 90.0
DEFAULT_IDLE_MINUTES = 15.0
POLL_S = 5.0


def home(state_dir: Path) -> Path:
    return state_dir / "prefect"


def wanted() -> bool:
    """A local server is used unless a server is configured or the temporary mode is asked for."""
    return not os.environ.get("PREFECT_API_URL") and os.environ.get("SYNTHAUG_PREFECT_SERVER", "local") != "temporary"


def warm_wanted() -> bool:
    """Requests run in the warm process unless `SYNTHAUG_WARM_PROCESS=off`."""
    return os.environ.get("SYNTHAUG_WARM_PROCESS", "on") != "off"


def idle_seconds() -> float:
    return 60.0 * float(os.environ.get("SYNTHAUG_PREFECT_IDLE_MINUTES") or DEFAULT_IDLE_MINUTES)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def running(state_dir: Path) -> dict | None:
    """The server this state folder started, if its supervisor is alive and it answers."""
    path = home(state_dir) / SERVER_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if process_alive(info["pid"]) and _answers(info["url"]):
        return info
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(state_dir: Path) -> dict:
    folder = home(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = open(folder / "server.log", "ab")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "pipelines.local_server", "--state", str(state_dir), "--port", str(port),
         "--idle-s", str(idle_seconds())],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    info = {"url": f"http://127.0.0.1:{port}/api", "pid": supervisor.pid, "home": str(folder)}
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _answers(info["url"]):
        if supervisor.poll() is not None or time.monotonic() > deadline:
            supervisor.kill()
            raise InputError(f"the local Prefect server did not start (log: {folder / 'server.log'}); "
                             "set PREFECT_API_URL to a running server instead")
        time.sleep(0.5)
    (folder / SERVER_FILE).write_text(json.dumps(info))
    return info


@contextmanager
def local_server(state_dir: Path):
    """Point this process at the state folder's local server, starting one if none answers.

    Yields the seconds spent starting it (0 when one was running). The request is marked running
    while it lasts, so the supervisor never stops the server under it.
    """
    started = time.perf_counter()
    folder = home(state_dir)
    with state_lock(state_dir, LOCK_NAME):  # one starter at a time; the supervisor takes it to stop
        info = running(state_dir)
        start_s = 0.0
        if info is None:
            info = _start(state_dir)
            start_s = time.perf_counter() - started
        (folder / REQUESTS_DIR).mkdir(exist_ok=True)
        marker = folder / REQUESTS_DIR / str(os.getpid())
        marker.touch()
    # this request's setting only: a later request of the same process (the demo's second) must find
    # no PREFECT_API_URL, enter here too and mark itself running, or the supervisor would stop the
    # server under it once the first request had been over for the idle period
    previous_url = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = info["url"]
    if start_s:
        print(f"synthaug: started a local Prefect server at {info['url'].removesuffix('/api')} "
              f"(database in {folder}); later requests reuse it; it stops after "
              f"{idle_seconds() / 60:g} idle minutes, or now with `synthaug server stop`", file=sys.stderr)
    try:
        yield start_s
    finally:
        marker.unlink(missing_ok=True)
        (folder / LAST_REQUEST_FILE).touch()
        if previous_url is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous_url


def stop(state_dir: Path) -> bool:
    """Stop the state folder's local server; False when none was running."""
    path = home(state_dir) / SERVER_FILE
    try:
        pid = json.loads(path.read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return False
    if not process_alive(pid):
        path.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return True


# ----- the supervisor process ----------------------------------------------------
def _busy(folder: Path) -> bool:
    """A request still running (markers of dead processes are removed)."""
    busy = False
    for marker in (folder / REQUESTS_DIR).glob("*"):
        if marker.name.isdigit() and process_alive(int(marker.name)):
            busy = True
        else:
            marker.unlink(missing_ok=True)
    return busy


def _idle_for(folder: Path, since: float) -> float:
    last = folder / LAST_REQUEST_FILE
    latest = max(since, last.stat().st_mtime if last.exists() else since)
    return time.time() - latest


def supervise(state_dir: Path, port: int, idle_s: float) -> None:
    """Run `prefect server start` and stop it after `idle_s` seconds without a request."""
    folder = home(state_dir)
    env = {**os.environ, "PREFECT_HOME": str(folder)}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=env, stdin=subprocess.DEVNULL)
    # the requests' warm process (pipelines/warm_runner.py): this process's environment, as the
    # first request had it, pointed at this server
    warm = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "warm-process", "--folder", str(folder)],
                            env={**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"},
                            stdin=subprocess.DEVNULL) if warm_wanted() else None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `synthaug server stop`: through `finally`
    began = time.time()
    try:
        while server.poll() is None:
            time.sleep(POLL_S)
            with state_lock(state_dir, LOCK_NAME):
                if not _busy(folder) and _idle_for(folder, began) > idle_s:
                    (folder / SERVER_FILE).unlink(missing_ok=True)  # no request finds a stopping server
                    break
    finally:
        with state_lock(state_dir, LOCK_NAME):
            info = folder / SERVER_FILE
            if info.exists() and json.loads(info.read_text()).get("pid") == os.getpid():
                info.unlink()
        processes = [process for process in (warm, server) if process is not None]
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="supervise this state folder's local Prefect server")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-s", type=float, required=True)
    args = parser.parse_args()
    supervise(args.state, args.port, args.idle_s)
