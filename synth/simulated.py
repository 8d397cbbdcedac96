"""A simulated hospital-admissions table: realistic mess, no real patients.

Used offline by tests and benchmarks (any size, seeded): string categoricals,
a boolean, missing measurements, skewed numbers, a date column, an ID column
and an outcome that depends on several columns. 15 modelled columns + the ID.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulated_admissions(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(55, 12, n).clip(18, 95).round()
    sex = rng.choice(["female", "male"], n)
    smoker = rng.random(n) < 0.25
    bmi = rng.normal(27, 4, n)
    bmi[rng.random(n) < 0.08] = np.nan  # not measured
    ward = rng.choice(["cardiology", "oncology", "surgery", "general"], n, p=[0.2, 0.2, 0.3, 0.3])
    systolic = rng.normal(125, 15, n) + 0.3 * (age - 55)
    heart_rate = rng.normal(75, 11, n).round().astype(int)
    glucose = rng.lognormal(4.6, 0.25, n) + 15 * (bmi > 30)
    glucose[rng.random(n) < 0.05] = np.nan
    creatinine = rng.lognormal(0.0, 0.35, n)
    group = rng.choice(["circulatory", "respiratory", "neoplasm", "digestive", "injury", "endocrine",
                        "musculoskeletal", "other"], n, p=[0.22, 0.14, 0.16, 0.12, 0.1, 0.08, 0.08, 0.1])
    insurance = rng.choice(["public", "private", "none"], n, p=[0.6, 0.35, 0.05])
    stay = np.ceil(rng.gamma(2.0, 2.5, n) + (ward == "surgery") * 2).astype(int)
    prior = rng.poisson(0.8, n).clip(0, 6)
    risk = (0.04 * (age - 55) + 0.8 * smoker + 0.05 * np.nan_to_num(bmi - 27) + (ward == "oncology") * 0.7
            + 0.3 * prior + 0.8 * (creatinine > 1.6) + 0.05 * (stay - 5))
    outcome = np.where(risk + rng.normal(0, 1, n) > 1.3, "readmitted", "home")
    admitted = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    return pd.DataFrame({
        "patient_id": [f"P{100000 + i}" for i in range(n)],
        "age": age.astype(int),
        "sex": sex,
        "smoker": smoker,
        "bmi": bmi,
        "ward": ward,
        "admitted": admitted.strftime("%Y-%m-%d"),
        "systolic_bp": systolic.round(1),
        "heart_rate": heart_rate,
        "glucose": glucose.round(1),
        "creatinine": creatinine.round(2),
        "diagnosis_group": group,
        "insurance": insurance,
        "length_of_stay": stay,
        "prior_admissions": prior,
        "outcome": outcome,
    })
