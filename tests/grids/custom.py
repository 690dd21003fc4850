"""Estimators that use functions defined here, a lambda included."""
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer


def signed_log(X):
    return np.sign(X) * np.log1p(np.abs(X))


def load_data():
    return make_classification(n_samples=200, n_features=6, random_state=0)


FAMILIES = {
    "logged": (make_pipeline(FunctionTransformer(signed_log), LogisticRegression()),
               {"logisticregression__C": [0.1, 1.0]}),
    "squared": (make_pipeline(FunctionTransformer(lambda X: X * np.abs(X)), LogisticRegression()),
                {"logisticregression__C": [0.1, 1.0]}),
}
