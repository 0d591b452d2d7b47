"""The tracker's classifiers: nearest neighbour and logistic regression on embeddings."""

from __future__ import annotations

import warnings

import numpy as np

from facecloak.models.registry import Metric


def _prepare(vectors: np.ndarray, metric: Metric) -> np.ndarray:
    """Cosine models compare directions, so their vectors are unit-normalised."""
    if metric == "cosine":
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def nearest_neighbour(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, metric: Metric
) -> np.ndarray:
    """The label of each test vector's nearest training vector under the model's metric."""
    a, b = _prepare(train, metric), _prepare(test, metric)
    squared = (b**2).sum(1)[:, None] + (a**2).sum(1)[None, :] - 2.0 * b @ a.T
    return labels[np.argmin(squared, axis=1)]


def logistic_regression(
    train: np.ndarray, labels: np.ndarray, test: np.ndarray, metric: Metric
) -> np.ndarray:
    """A multinomial logistic regression on standardised embeddings (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny classes
        model.fit(_prepare(train, metric), labels)
    return model.predict(_prepare(test, metric))


CLASSIFIERS = {"nn": nearest_neighbour, "logreg": logistic_regression}
