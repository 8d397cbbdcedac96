"""Prefect flows, MLflow tracking, DVC publishing, settings and the `synthaug` CLI: orchestration only."""
