"""Forests searched over n_estimators: the runner fits the smallest on a fold and grows it to the others.

Each family takes another way through the growth: a plain forest with sizes out
of order, a pipeline whose preprocessing is shared by its candidates (the
forest is grown on the transformed rows), and a pipeline whose own parameters
are searched too (grown through the pipeline). ``bagged`` adds bootstrap
subsamples, per-tree class weights and out-of-bag scores, all drawn from
each tree's own seed.
"""
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load_data():
    return make_classification(n_samples=400, n_features=10, n_informative=5, weights=[0.7], random_state=4)


FAMILIES = {
    "rf": (RandomForestClassifier(random_state=0),
           {"n_estimators": [12, 3, 6], "max_depth": [None, 3]}),
    "scaled_et": (make_pipeline(StandardScaler(), ExtraTreesClassifier(random_state=1)),
                  {"extratreesclassifier__n_estimators": [4, 8, 16]}),
    "pca_rf": (make_pipeline(StandardScaler(), PCA(random_state=0), RandomForestClassifier(random_state=2)),
               {"pca__n_components": [3, 6], "randomforestclassifier__n_estimators": [5, 10]}),
    "bagged": (RandomForestClassifier(random_state=3, max_samples=0.5, class_weight="balanced_subsample",
                                      oob_score=True),
               {"n_estimators": [10, 20]}),
}
