"""The kinds of data a request may bring, and the one place that decides which kind a request is.

A new kind is one module implementing `Kind` plus one entry in `KINDS`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.kinds.base import Kind
from pipelines.kinds.images import Images
from pipelines.kinds.tables import Tables

if TYPE_CHECKING:
    from pipelines.settings import AugmentRequest

KINDS: tuple[Kind, ...] = (Images(), Tables())  # asked in this order; tables take whatever is left


def kind_for(request: AugmentRequest) -> Kind:
    return next(kind for kind in KINDS if kind.accepts(request.data))


__all__ = ["KINDS", "Kind", "kind_for"]
