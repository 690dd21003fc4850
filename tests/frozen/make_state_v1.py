"""Write ``tests/frozen/state_v1.pkl``, a state file of format version 1.

Run once from the repository root::

    PYTHONPATH=. python tests/frozen/make_state_v1.py

The file is committed and never regenerated: ``tests/test_state_frozen.py``
proves that later versions of checkpointed-search still read it. When the
format changes, bump ``state.FORMAT_VERSION`` and add ``make_state_v2.py`` and
``state_v2.pkl`` beside these instead.

Written with Python 3.11.7, scikit-learn 1.9.1, numpy 2.4.6, cloudpickle 3.1.2.
It holds the runner's schema: one ``lr`` family searched to the end on the
iris data (shipped with scikit-learn), its best estimator refit and kept as
a :class:`state.Pickled`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold

import state

HERE = Path(__file__).resolve().parent
STAMP = "2026-11-22T00:00:00+00:00"


def candidate_key(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def main() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    grid = {"C": [0.1, 1.0, 10.0]}
    splits = list(StratifiedKFold(n_splits=3).split(X, y))
    search = GridSearchCV(LogisticRegression(max_iter=1000), grid, cv=splits).fit(X, y)
    results = search.cv_results_
    candidates = {
        candidate_key(params): {
            "params": params,
            "test_scores": [float(results[f"split{i}_test_score"][k]) for i in range(3)],
            "fit_times": [float(results["mean_fit_time"][k])] * 3,
            "score_times": [float(results["mean_score_time"][k])] * 3,
            "errors": [None, None, None],
        }
        for k, params in enumerate(results["params"])
    }
    data = {
        "format_version": 1,
        "environment": state.environment(),
        "created": STAMP,
        "updated": STAMP,
        "run": {
            "task": "classification",
            "data": {
                "source": "iris (built in)",
                "target": "target",
                "n_samples": len(y),
                "columns": list(X.columns),
                "fingerprint": joblib.hash((X, y)),
            },
            "cv": {
                "n_splits": 3,
                "test_indices": [test for _, test in splits],
                "fingerprint": joblib.hash([test for _, test in splits]),
            },
            "scoring": None,
            "grids": "classification",
            "family_order": ["lr"],
        },
        "families": {
            "lr": {
                "status": "done",
                "estimator": repr(LogisticRegression(max_iter=1000)),
                "estimator_fingerprint": joblib.hash(LogisticRegression(max_iter=1000)),
                "grid_fingerprint": joblib.hash(grid),
                "n_candidates": len(candidates),
                "candidates": candidates,
                "time_spent": float(np.sum(results["mean_fit_time"])) * 3,
                "cv_results": results,
                "best_index": int(search.best_index_),
                "best_score": float(search.best_score_),
                "best_params": search.best_params_,
                "best_estimator": state.Pickled(search.best_estimator_),
                "refit_time": float(search.refit_time_),
                "finished": STAMP,
            }
        },
    }
    state.save(HERE / "state_v1.pkl", data)
    print(f"wrote {HERE / 'state_v1.pkl'}; best {search.best_params_} {search.best_score_:.4f}")


if __name__ == "__main__":
    main()
