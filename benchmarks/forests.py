"""A workload of big best estimators (``--workload forests``): extremely randomized trees grown deep.

12,000 noisy rows (10% of the labels flipped), so that trees grown to pure
leaves are big: a best forest of 200 trees pickles to about 100 MB, and the
state grows to about 400 MB as the four families end. Each family searches
the forest's size (grown from 50 trees to 100 and 200 on each fold) for one
way of choosing the features at a split. Checkpoints of such a state take
seconds, the hand-written loop's pickle of its dict too.
"""
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier


def load_data():
    return make_classification(n_samples=12000, n_features=20, n_informative=8, flip_y=0.1, random_state=0)


FAMILIES = {
    f"et_{name}": (ExtraTreesClassifier(max_features=features, random_state=0),
                   {"n_estimators": [50, 100, 200]})
    for name, features in (("sqrt", "sqrt"), ("quarter", 0.25), ("third", 0.33), ("half", 0.5))
}
