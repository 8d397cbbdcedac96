"""Fidelity, utility and privacy scores, the publish gate and the figures: pure functions."""
