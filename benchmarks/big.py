"""Workload BIG: larger data, pipelines whose preprocessing costs more than the model.

A grids file in the form ``search run --grids`` reads (FAMILIES, load_data), to
be searched with cv=5 and 2 jobs like W1. About 2 minutes in the hand-written
loop on 2 idle cores (about 210 s of serial fit + score work). What it adds to W1:

- ``poly_pca_knn``: degree-2 polynomial features of 40 columns (861 columns),
  scaled, then a full PCA to 100 components, then k-NN. The preprocessing is
  about 90% of a task and is the same for every ``n_neighbors``: a runner that
  cached fitted preprocessing per fold would do it once per fold, not once per task.
- ``spline_pca_lr``: a spline basis (40 x 12 columns), a full PCA, then a
  logistic regression: the preprocessing is about 97% of a task.
- ``pca_rf``: a PCA to 20 components before a random forest; the forest
  dominates and the tasks are long and uneven (``max_features``, ``max_depth``).
  (Not SelectKBest(f_classif): a function-valued parameter whose code holds
  nested code objects fingerprints differently in every process, and the
  runner then refuses to resume the family as "changed".)
- ``nb`` and ``hgb``: a cheap family and a boosted one with uneven candidates,
  so the family order mixes long and short tasks.

Family parameter names are distinct, so a task's family can be told from its
parameters alone.
"""

from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, SplineTransformer, StandardScaler


def load_data():
    return make_classification(n_samples=20000, n_features=40, n_informative=12, n_redundant=8,
                               class_sep=0.8, random_state=0)


FAMILIES = {
    "poly_pca_knn": (
        make_pipeline(StandardScaler(), PolynomialFeatures(degree=2), StandardScaler(),
                      PCA(n_components=100, svd_solver="full"), KNeighborsClassifier()),
        {"kneighborsclassifier__n_neighbors": [5, 15, 45]},
    ),
    "spline_pca_lr": (
        make_pipeline(SplineTransformer(n_knots=10, degree=3), PCA(n_components=100, svd_solver="full"),
                      LogisticRegression(max_iter=300, tol=1e-3)),
        {"logisticregression__C": [0.001, 0.01, 0.1, 1.0, 10.0]},
    ),
    "pca_rf": (
        make_pipeline(PCA(n_components=20, random_state=0), RandomForestClassifier(n_estimators=40, random_state=0)),
        {"randomforestclassifier__max_features": ["sqrt", 0.5], "randomforestclassifier__max_depth": [8, None]},
    ),
    "nb": (GaussianNB(), {"var_smoothing": [1e-9, 1e-7, 1e-5]}),
    "hgb": (
        HistGradientBoostingClassifier(early_stopping=False, random_state=0),
        {"learning_rate": [0.05, 0.2], "max_iter": [100, 300]},
    ),
}
