"""A family whose every fit takes far longer than the test's --max-time, beside a quick one."""
import time

from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.naive_bayes import GaussianNB


class SlowDummy(DummyClassifier):
    def fit(self, X, y, sample_weight=None):
        time.sleep(60)
        return super().fit(X, y, sample_weight)


def load_data():
    return make_classification(n_samples=60, n_features=4, random_state=0)


FAMILIES = {
    "nb": (GaussianNB(), {"var_smoothing": [1e-9]}),
    "sleepy": (SlowDummy(), {"strategy": ["prior"]}),
}
