"""Progress of long steps (training, scoring, publishing), told to whoever is listening.

Engines and scorers call `update` where they already synchronise (once an epoch, once a scoring
family); a front installs a listener with `listening`: a terminal display, Prefect log lines.
Without a listener an update costs one attribute read. Nothing here knows about terminals or
Prefect, so `synth/` and `evaluation/` stay free of both.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Protocol


class Listener(Protocol):
    def __call__(self, task: str, done: float, total: float | None, info: dict) -> None: ...


_listeners: list[Listener] = []


def update(task: str, done: float, total: float | None = None, **info) -> None:
    """`task` has reached `done` of `total` units (None: unknown); `info` is the latest figures
    (losses, a validation score, the family being scored)."""
    for listener in _listeners:
        listener(task, done, total, info)


@contextmanager
def listening(listener: Callable[[str, float, float | None, dict], None]) -> Iterator[None]:
    """Send every update to `listener` while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
