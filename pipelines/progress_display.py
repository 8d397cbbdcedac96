"""Where progress updates (`synth.progress`) are shown: a live display on a terminal, log lines in a
deployment's run. Neither writes to stdout, which carries only the result."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LABELS = {"train": "training", "evaluate": "scoring", "publish": "publishing"}
SHORT = {"generator_loss": "G loss", "discriminator_loss": "D loss", "validation": "validation"}
LOG_EVERY_S = 30.0  # a deployment's log gets a progress line at most this often per task (and at its end)


def describe(done: float, total: float | None, info: dict) -> str:
    """`120/300 epochs · G loss -1.2 · D loss 0.31`."""
    unit = info.get("unit")
    count = f"{done:.0f}/{total:.0f}" if total else f"{done:.0f}"
    parts = [f"{count} {unit}s" if unit else count]
    for key, value in info.items():
        if key != "unit":
            label = SHORT.get(key, key)
            parts.append(f"{label} {value:.3g}" if isinstance(value, float) else f"{label} {value}")
    return " · ".join(parts)


class TerminalProgress:
    """One live bar per task on stderr, with elapsed and remaining time and the latest figures."""

    def __init__(self, console: Console | None = None):
        self.display = Progress(TextColumn("{task.description:<10}"), BarColumn(bar_width=16), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[detail]}"),
                                console=console or Console(stderr=True), transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "TerminalProgress":
        self.display.start()
        return self

    def __exit__(self, *exc) -> None:
        self.display.stop()

    def __call__(self, task: str, done: float, total: float | None, info: dict) -> None:
        detail = describe(done, total, info)
        if task not in self.tasks:
            self.tasks[task] = self.display.add_task(LABELS.get(task, task), total=total, detail=detail)
        self.display.update(self.tasks[task], completed=done, total=total, detail=detail)


class LogProgress:
    """Progress as log lines (a Prefect run logger in a deployment): the first and last update of
    each task and at most one line every LOG_EVERY_S seconds between."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter):
        self.logger = logger
        self.last: dict[str, float] = {}

    def __call__(self, task: str, done: float, total: float | None, info: dict) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if task in self.last and not finished and now - self.last[task] < LOG_EVERY_S:
            return
        self.last[task] = now
        self.logger.info("%s: %s", LABELS.get(task, task), describe(done, total, info))
