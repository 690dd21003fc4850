"""A fast grids file for tests: four families on a small synthetic task."""
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier


def load_data():
    return make_classification(n_samples=300, n_features=8, n_informative=4, random_state=0)


FAMILIES = {
    "lr": (LogisticRegression(max_iter=1000), {"C": [0.01, 0.1, 1.0, 10.0]}),
    "knn": (KNeighborsClassifier(), {"n_neighbors": [1, 3, 5, 7, 9, 11]}),
    "nb": (GaussianNB(), {"var_smoothing": [1e-9, 1e-7]}),
    "tree": (DecisionTreeClassifier(random_state=0),
             {"max_depth": [1, 2, 3, None], "min_samples_leaf": [1, 5]}),
}
