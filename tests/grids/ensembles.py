"""Boosting and bagging searched over their size: the runner fits the smallest on a fold and grows it.

Three classes, so each boosting stage is several trees. ``gb`` draws row
subsamples and feature subsets from the generator a warm start goes on with,
with sizes out of order and a second parameter; ``hgb`` subsamples features
too, behind a scaler its candidates share; ``scaled_gb`` searches the
scaler's own parameter as well, so it grows through the pipeline.
``bagged_knn`` draws rows and features for each neighbours model from that
model's own seed.
"""
from sklearn.datasets import make_classification
from sklearn.ensemble import BaggingClassifier, GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load_data():
    return make_classification(n_samples=300, n_features=8, n_informative=5, n_classes=3, random_state=6)


FAMILIES = {
    "gb": (GradientBoostingClassifier(random_state=0, subsample=0.7, max_features="sqrt", max_depth=2),
           {"n_estimators": [12, 4, 8], "learning_rate": [0.1, 0.3]}),
    "hgb": (make_pipeline(StandardScaler(), HistGradientBoostingClassifier(random_state=1, max_features=0.5)),
            {"histgradientboostingclassifier__max_iter": [5, 15]}),
    "scaled_gb": (make_pipeline(StandardScaler(), GradientBoostingClassifier(random_state=2, max_depth=2)),
                  {"gradientboostingclassifier__n_estimators": [3, 6], "standardscaler__with_std": [True, False]}),
    "bagged_knn": (BaggingClassifier(KNeighborsClassifier(), random_state=3, max_samples=0.6, max_features=0.7,
                                     bootstrap_features=True),
                   {"n_estimators": [4, 8], "estimator__n_neighbors": [3, 9]}),
}
