"""An estimator object given as a parameter value in two families, and a grid holding duplicates.

Checking the grids must not set the candidates' parameters on the user's own
objects (GridSearchCV clones them), and a candidate the grid holds twice is
searched twice, as GridSearchCV does.
"""
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def load_data():
    return make_classification(n_samples=150, n_features=6, random_state=0)


svc = SVC()
FAMILIES = {
    "swap": (Pipeline([("sc", StandardScaler()), ("clf", LogisticRegression())]),
             [{"clf": [svc], "clf__gamma": [0.001, 1.0]}, {"clf": [svc], "clf__C": [0.5, 2.0]}]),
    "svm": (make_pipeline(StandardScaler(), svc), {"svc__gamma": ["scale", 0.01]}),
    "dup": (KNeighborsClassifier(), {"n_neighbors": [5, 3, 5]}),
}
