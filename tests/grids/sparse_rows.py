"""X as a scipy sparse matrix, which has no len()."""
from scipy import sparse
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

FAMILIES = {"lr": (LogisticRegression(max_iter=500), {"C": [0.1, 1.0]})}


def load_data():
    X, y = load_iris(return_X_y=True)
    return sparse.csr_matrix(X), y
