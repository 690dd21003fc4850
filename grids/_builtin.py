"""Built-in model families: pipelines over raw table columns and their grids.

Every family is a :class:`~sklearn.pipeline.Pipeline` whose first step prepares
raw columns (numeric: median imputation and scaling; categorical: most-frequent
imputation and one-hot encoding that ignores unknown categories), so the best
estimator of a family is a self-contained black box that predicts on raw rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR

__all__ = ["BUILTIN", "builtin_families", "preprocessor"]


def preprocessor() -> ColumnTransformer:
    """Return the column preparation shared by every built-in family.

    Numeric columns are imputed with their median and standardized;
    every other column is imputed with its most frequent value and one-hot
    encoded, ignoring categories unseen during fit. The output is dense so
    that estimators such as GaussianNB accept it.
    """
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    return ColumnTransformer(
        [
            ("num", numeric, make_column_selector(dtype_include=np.number)),
            ("cat", categorical, make_column_selector(dtype_exclude=np.number)),
        ],
        sparse_threshold=0.0,
    )


def _family(model, grid: dict) -> tuple[Pipeline, dict]:
    return (
        Pipeline([("prep", preprocessor()), ("model", model)]),
        {f"model__{name}": values for name, values in grid.items()},
    )


def _classification() -> dict:
    return {
        "lr": _family(LogisticRegression(max_iter=5000), {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}),
        "knn": _family(
            KNeighborsClassifier(),
            {"n_neighbors": [3, 5, 11, 21, 31], "weights": ["uniform", "distance"]},
        ),
        "rf": _family(
            RandomForestClassifier(random_state=0),
            {"n_estimators": [100, 300], "max_features": ["sqrt", 0.5]},
        ),
        "nb": _family(GaussianNB(), {"var_smoothing": [1e-9, 1e-8, 1e-7, 1e-6, 1e-5]}),
        "svm": _family(SVC(), {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.01]}),
        "hgb": _family(
            HistGradientBoostingClassifier(random_state=0),
            {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
        ),
    }


def _regression() -> dict:
    return {
        "ridge": _family(Ridge(), {"alpha": [0.01, 0.1, 1.0, 10.0, 100.0]}),
        "knn": _family(
            KNeighborsRegressor(),
            {"n_neighbors": [3, 5, 11, 21, 31], "weights": ["uniform", "distance"]},
        ),
        "rf": _family(
            RandomForestRegressor(random_state=0),
            {"n_estimators": [100, 300], "max_features": [1.0, 0.5]},
        ),
        # SVR's C and epsilon are in the target's units: on a standardized target the same grid
        # suits a price in dollars and a rate in percent alike
        "svr": _family(
            TransformedTargetRegressor(SVR(), transformer=StandardScaler()),
            {"regressor__C": [0.1, 1.0, 10.0], "regressor__epsilon": [0.1, 0.5]},
        ),
        "hgb": _family(
            HistGradientBoostingRegressor(random_state=0),
            {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
        ),
    }


BUILTIN = {"classification": _classification, "regression": _regression}


def builtin_families(task: str) -> dict:
    """Return fresh ``{name: (estimator, param_grid)}`` for ``task``.

    Parameters
    ----------
    task : {"classification", "regression"}
    """
    return BUILTIN[task]()
