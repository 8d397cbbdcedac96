"""Generator engines behind one contract; each engine module below registers itself by its name.

Adding an engine: one module with a `TabularGenerator` or `ImageGenerator` subclass, and its import here."""

from synth.generators.base import ENGINES, Engine, engine_class, engines_for, load_generator
from synth.generators.ctgan_engine import CTGANGenerator
from synth.generators.image_base import ImageGenerator
from synth.generators.image_gan import ConditionalImageGAN
from synth.generators.tabgan import TabGAN
from synth.generators.tabular_base import TabularGenerator
from synth.generators.translation import TranslationGAN


def make_generator(engine: str, **params) -> TabularGenerator:
    """A tabular engine by name (the request's `engine`)."""
    return engine_class(engine, "tables")(**params)


__all__ = ["ENGINES", "CTGANGenerator", "ConditionalImageGAN", "Engine", "ImageGenerator", "TabGAN",
           "TabularGenerator", "TranslationGAN", "engine_class", "engines_for", "load_generator", "make_generator"]
