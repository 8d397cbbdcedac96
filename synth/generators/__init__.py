"""Generators behind one interface; `make_generator` picks an engine by name."""

from synth.errors import InputError
from synth.generators.base import ENGINES, TabularGenerator
from synth.generators.ctgan_engine import CTGANGenerator


def make_generator(engine: str, **params) -> TabularGenerator:
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; known: {', '.join(sorted(ENGINES))}")
    return ENGINES[engine](**params)


__all__ = ["ENGINES", "CTGANGenerator", "TabularGenerator", "make_generator"]
