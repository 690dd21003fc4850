"""X as a list of token lists of different lengths (not an array), as a text pipeline takes it."""
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def identity(tokens):
    return tokens


FAMILIES = {"tfidf": (make_pipeline(TfidfVectorizer(analyzer=identity), LogisticRegression()),
                      {"logisticregression__C": [0.1, 10.0]})}


def load_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 90)
    X = [[f"w{v}"] * int(rng.integers(1, 5)) + [f"n{rng.integers(0, 4)}"] for v in y]
    return X, y
