"""Data loading, schemas, splits and generators. Pure Python + torch: no Prefect, MLflow or DVC."""
