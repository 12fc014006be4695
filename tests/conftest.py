"""Shared fixtures: small unit-norm problems."""

import numpy as np
import pytest


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture
def problem():
    rng = np.random.default_rng(1234)
    X = unit_rows(rng, 24, 5)
    y = rng.uniform(-1, 1, 24)
    return X, y
