"""Workload TABLE: a table as users bring them, large enough for memory and start-up to matter.

A grids file in the form ``search run --grids`` reads (FAMILIES, load_data), to be
searched with cv=5 and 2 jobs like W1. ``load_data`` makes a pandas DataFrame of
200,000 rows: 25 numeric columns and 10 text columns of 5 to 50 levels, about 5%
of the numbers and 3% of the texts missing, and a three-class target. Every
family is a pipeline behind the built-in families' preprocessing (median
imputation and scaling; most-frequent imputation and one-hot encoding): a dense
transformed fold is about 40 times the size of the data's numbers, so what
matters here is how many copies of the data and of the transformed folds the
workers hold, and the time spent before the first fit (reading, checking and
fingerprinting the table). The models are cheap: about 3 minutes in the
hand-written loop on 2 idle cores.
"""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def load_data(n: int = 200_000):
    rng = np.random.default_rng(0)
    numbers = rng.normal(size=(n, 25))
    columns = {f"num{j}": np.where(rng.random(n) < 0.05, np.nan, numbers[:, j].round(5)) for j in range(25)}
    score = numbers[:, :5] @ rng.normal(size=5)
    for k, levels in enumerate([5, 8, 12, 20, 30, 50, 6, 10, 15, 40]):
        codes = rng.integers(0, levels, n)
        score += 0.3 * (codes % 3 == 0)
        text = np.array([f"c{k}_{i}" for i in range(levels)], dtype=object)[codes]
        text[rng.random(n) < 0.03] = None
        columns[f"cat{k}"] = text
    X = pd.DataFrame(columns)
    y = np.digitize(score + rng.normal(scale=1.0, size=n), np.quantile(score, [1 / 3, 2 / 3]))
    return X, y


def _prep():
    return ColumnTransformer(
        [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
          make_column_selector(dtype_include=np.number)),
         ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                               OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
          make_column_selector(dtype_exclude=np.number))],
        sparse_threshold=0.0)


FAMILIES = {
    "sgd": (Pipeline([("prep", _prep()), ("sgd", SGDClassifier(random_state=0, max_iter=5, tol=None))]),
            {"sgd__alpha": [1e-5, 1e-4, 1e-3]}),
    "lr": (Pipeline([("prep", _prep()), ("lr", LogisticRegression(max_iter=30))]), {"lr__C": [0.1, 1.0]}),
    "nb": (Pipeline([("prep", _prep()), ("nb", GaussianNB())]), {"nb__var_smoothing": [1e-9, 1e-7]}),
    "hgb": (Pipeline([("prep", _prep()),
                      ("hgb", HistGradientBoostingClassifier(random_state=0, early_stopping=False))]),
            {"hgb__max_iter": [20, 50], "hgb__max_leaf_nodes": [15]}),
}
