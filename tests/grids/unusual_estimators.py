"""Estimators GridSearchCV takes that are easy to refuse or break: a stateless transformer in a
pipeline (nothing shows it is fitted) and a wrapper whose parameter is a class it builds from."""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


class Log1p(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.log1p(X)


class Factory(ClassifierMixin, BaseEstimator):
    def __init__(self, model_class=LogisticRegression, C=1.0):
        self.model_class = model_class
        self.C = C

    def fit(self, X, y):
        self.model_ = self.model_class(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


FAMILIES = {
    "stateless": (make_pipeline(Log1p(), LogisticRegression(max_iter=500)), {"logisticregression__C": [0.1, 1.0]}),
    "factory": (Factory(), {"C": [0.1, 1.0]}),
}


def load_data():
    return load_iris(return_X_y=True)
