"""A shared preprocessing whose transformed folds are larger than the data (1.7 MB a fold)."""
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler


def load_data():
    return make_classification(n_samples=600, n_features=12, n_informative=6, random_state=4)


FAMILIES = {
    "poly_lr": (make_pipeline(StandardScaler(), PolynomialFeatures(degree=3), LogisticRegression(max_iter=300)),
                {"logisticregression__C": [0.1, 1.0]}),
}
