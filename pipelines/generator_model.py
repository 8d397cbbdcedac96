"""MLflow pyfunc model (models-from-code form) that serves a saved synthaug generator.

Input: a frame with a column `n` (rows to draw) and an optional `conditions`
column holding a JSON object such as `{"diagnosis": "malignant"}` or `{"label": 0}`;
one output block per input row, concatenated: a frame of rows for a table
generator, a uint8 array (N, H, W) for an image generator.
"""

import json

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class SyntheticDataModel(PythonModel):
    def load_context(self, context):
        from synth.generators import load_generator

        self.generator = load_generator(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        blocks = []
        for row in model_input.to_dict(orient="records"):
            raw = row.get("conditions")
            conditions = json.loads(raw) if isinstance(raw, str) and raw else None
            blocks.append(self.generator.sample(int(row["n"]), conditions))
        return self.generator.served(blocks)


mlflow.models.set_model(SyntheticDataModel())
