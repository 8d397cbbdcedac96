"""A warm process for `synthaug augment`, beside the state folder's local Prefect server.

Every request used to spend several seconds importing the pipeline (torch, pandas, scikit-learn,
MLflow, Prefect, DVC) before its first stage. The local server's supervisor starts this process with
the server; it imports all of that once and forks one child per request. The client (`synthaug
augment`) passes its stdin, stdout and stderr over a Unix socket in the state folder (so the child
writes to the user's terminal, live display included), with its arguments, environment and working
directory; the child runs the same command-line code a fresh process would and returns the exit
status. A request it cannot serve exactly as a fresh process would is declined before any work, and
the client runs it itself: other code or another Python, other Prefect or thread settings (read at
import), code edited since this process started (it then exits; the next server start brings a new
one), or a command other than `augment`. Only the same user may connect (peer credentials checked).
"""

from __future__ import annotations

import atexit
import io
import json
import os
import signal
import socket
import struct
import sys
import traceback
from pathlib import Path
from typing import Callable

SOCKET_NAME = "requests.sock"  # in the local server's folder, beside its database
FORWARDED = ("augment",)
# read when a library is imported, so the warm process and the client must agree on them
IMPORT_TIME_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONPATH")
# what a request imports on its way (the lazily imported ones included)
PRELOAD = ("pipelines.cli", "pipelines.flow", "pipelines.run", "pipelines.tracking", "pipelines.publishing",
           "pipelines.progress_display", "evaluation.assessment", "evaluation.report", "mlflow", "mlflow.data",
           "mlflow.data.code_dataset_source", "mlflow.tracking", "dvc.repo", "dvc.api", "sklearn.ensemble",
           "sklearn.linear_model", "sklearn.model_selection", "sdmetrics.reports.single_table",
           "matplotlib.pyplot", "prefect_dask", "rich.progress",
           "torch._dynamo")  # imported by the first optimiser a training builds: 1.8 s on the 2-core box


def import_settings(env: dict) -> dict:
    """The environment a module reads as it is imported: Prefect's settings and thread counts."""
    return {k: v for k, v in env.items()
            if (k.startswith("PREFECT_") and k != "PREFECT_API_URL") or k in IMPORT_TIME_ENV}


def _identity() -> dict:
    """What the client and the warm process must share: the interpreter and this package's code."""
    return {"python": sys.executable, "code": str(Path(__file__).resolve().parent)}


# ----- the client: `synthaug augment` -------------------------------------------------
def forward(argv: list[str], folder: Path) -> int | None:
    """Run a `FORWARDED` command in the warm process listening in `folder` (the local server's); its
    exit status, or None when there is none or it declined (nothing has run then: the caller runs
    the command itself)."""
    if not (folder / SOCKET_NAME).exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.getcwd()
    try:
        os.chdir(folder)  # a relative address: state folders deeper than a socket path may be long
        connection.connect(SOCKET_NAME)
    except OSError:
        connection.close()
        return None
    finally:
        os.chdir(here)
    with connection:
        request = {"argv": ["synthaug", *argv], "env": dict(os.environ), "cwd": here, **_identity()}
        try:
            socket.send_fds(connection, [b"R"], [0, 1, 2])
            connection.sendall(json.dumps(request).encode() + b"\n")
            replies = connection.makefile("rb")
            first = json.loads(replies.readline() or b"{}")
        except (OSError, ValueError):
            return None
        if "pid" not in first:  # declined, or a warm process on its way out
            return None
        child = first["pid"]

        def relay(signum, _frame):  # Ctrl-C reaches this process only: pass it on
            os.kill(child, signum)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, relay)
        try:
            last = json.loads(replies.readline() or b"{}")
        except (OSError, ValueError):
            last = {}
    if "exit" not in last:
        print("error: the warm request process ended without an exit status", file=sys.stderr)
        return 1
    return int(last["exit"])


# ----- the warm process ----------------------------------------------------------------
def _stamp(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _sources() -> dict[str, int]:
    """Modification times of this project's loaded modules: an edit means stale code here."""
    root = Path(__file__).resolve().parent.parent
    paths = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return {path: _stamp(path) for path in paths if path and Path(path).resolve().is_relative_to(root)}


def _changed(stamps: dict[str, int]) -> bool:
    return any(_stamp(path) != stamp for path, stamp in stamps.items())


def _decline_reason(request: dict, stamps: dict[str, int]) -> str | None:
    argv = request.get("argv") or []
    if len(argv) < 2 or argv[1] not in FORWARDED:
        return "not a forwarded command"
    if {k: request.get(k) for k in _identity()} != _identity():
        return "other code or another Python"
    if import_settings(request["env"]) != import_settings(dict(os.environ)):
        return "other import-time settings"
    if _changed(stamps):
        return "code changed"
    return None


def _reply(connection: socket.socket, message: dict) -> None:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _child(connection: socket.socket, listener: socket.socket, fds: list[int], request: dict,
           run: Callable[[], int]) -> None:
    """Become the client's process: its descriptors, environment, folder and arguments; `run` the CLI."""
    listener.close()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = sys.__stdin__ = io.open(0, "r", closefd=False)
    sys.stdout = sys.__stdout__ = io.open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
    sys.stderr = sys.__stderr__ = io.open(2, "w", buffering=1, closefd=False)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = request["argv"]
    _reply(connection, {"pid": os.getpid()})
    code = 1
    try:
        code = run()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # the client shows what a fresh process would have shown
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:
                pass
        _reply(connection, {"exit": code})
        connection.close()
        # Prefect and MLflow finish sending logs at exit: after the client has its answer, quietly
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(devnull, target)
    # exit as a process does (Prefect and MLflow drain at exit), but never unwind into the loop above
    atexit._run_exitfuncs()
    os._exit(code)


def _serve_one(connection: socket.socket, listener: socket.socket, stamps: dict[str, int],
               run: Callable[[], int]) -> bool:
    """One request: declined, or handed to a forked child. True when this process should exit."""
    pid_uid_gid = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    if struct.unpack("3i", pid_uid_gid)[1] != os.getuid():
        return False
    connection.settimeout(30)
    try:
        _, fds, _, _ = socket.recv_fds(connection, 1, 3)
        request = json.loads(connection.makefile("rb").readline())
    except (OSError, ValueError):
        return False
    connection.settimeout(None)
    reason = _decline_reason(request, stamps) if len(fds) == 3 else "no descriptors"
    if reason:
        _reply(connection, {"declined": reason})
        for fd in fds:
            os.close(fd)
        print(f"declined a request: {reason}", file=sys.stderr, flush=True)
        return reason == "code changed"
    if os.fork() == 0:
        _child(connection, listener, fds, request, run)
    for fd in fds:
        os.close(fd)
    return False


def serve(folder: Path, run: Callable[[], int]) -> None:
    """Listen in `folder` first (a request arriving while the imports run waits for them), import,
    then serve until the supervisor that started this process is gone or the code changed. Each
    child calls `run` (the command line's, on the client's `sys.argv`) and reports its status."""
    import importlib
    import warnings

    os.chdir(folder)
    Path(SOCKET_NAME).unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(SOCKET_NAME)
    os.chmod(SOCKET_NAME, 0o600)
    listener.listen(16)
    supervisor = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the supervisor stops it: through `finally`
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in PRELOAD:
                try:
                    importlib.import_module(name)
                except ImportError:
                    continue
        stamps = _sources()
        listener.settimeout(1.0)
        while os.getppid() == supervisor:
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:  # finished children
                    pass
            except ChildProcessError:
                pass
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            with connection:
                if _serve_one(connection, listener, stamps, run):
                    break
    finally:
        listener.close()
        (folder / SOCKET_NAME).unlink(missing_ok=True)

