"""A refit whose last bits depend on the BLAS threads: logistic regression on all 1797 rows of digits
(the CV folds' 4/5 of them gave the same bits either way here)."""
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load_data():
    return load_digits(return_X_y=True)


FAMILIES = {"lr": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
                   {"logisticregression__C": [0.1, 1]})}
