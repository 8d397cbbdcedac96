"""Generators behind one interface; `make_generator` picks an engine by name."""

from synth.errors import InputError
from synth.generators.base import ENGINES, TabularGenerator
from synth.generators.ctgan_engine import CTGANGenerator
from synth.generators.tabgan import TabGAN


def load_generator(directory):
    """A saved generator of either kind, by the engine named in its metadata."""
    import json
    from pathlib import Path

    from synth.generators.image_gan import ConditionalImageGAN

    meta = Path(directory) / "generator.json"
    if meta.is_file() and json.loads(meta.read_text()).get("engine") == ConditionalImageGAN.engine:
        return ConditionalImageGAN.load(directory)
    return TabularGenerator.load(directory)


def make_generator(engine: str, **params) -> TabularGenerator:
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; known: {', '.join(sorted(ENGINES))}")
    return ENGINES[engine](**params)


__all__ = ["ENGINES", "CTGANGenerator", "TabularGenerator", "load_generator", "make_generator", "TabGAN"]
