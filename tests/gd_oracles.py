"""The exactness standard shared by the sparse and function-space tests: a method against dense GD from the same
network (dense GD is itself checked against torch autograd in tests/test_training.py), and the random problems."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

import sparsentk as snt


def run_pair(X, y, method, width, bias, lr, steps, *, init="standard", seed=0, dtype=np.float64, net=None,
             **train_kwargs: Any):
    """Dense GD and ``method`` from the same network (``net``, or one drawn from the arguments). A run that stops
    (``TrainingDiverged``) must stop with both methods, at the same step; its history is the one compared."""
    dense = net.copy() if net is not None else snt.ShallowReLU(X.shape[1], width, bias=bias, init=init, seed=seed,
                                                               dtype=dtype)
    other = dense.copy()
    histories, errors = [], []
    for model, name in ((dense, "dense"), (other, method)):
        try:
            histories.append(snt.train(model, X, y, lr=lr, steps=steps, method=name, **train_kwargs))
            errors.append(None)
        except snt.TrainingDiverged as err:
            histories.append(err.history)
            errors.append(err)
    assert type(errors[1]) is type(errors[0]) and histories[1].steps == histories[0].steps
    return dense, other, histories[0], histories[1]


def assert_same_iterates(dense, other, hd, ho, *, rtol: float = 1e-9, atol: float = 1e-11) -> None:
    """Loss to 1e-9 relative, identical active counts and flips at every iterate, movement and the final W and b to
    ``rtol``/``atol``."""
    np.testing.assert_allclose(ho.loss, hd.loss, rtol=1e-9, atol=1e-12)
    for name in ("active_mean", "active_max", "flips"):
        np.testing.assert_array_equal(getattr(ho, name), getattr(hd, name), err_msg=name)
    for name in ("movement_w", "movement_b"):
        np.testing.assert_allclose(getattr(ho, name), getattr(hd, name), rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(other.W, dense.W, rtol=rtol, atol=atol)
    np.testing.assert_allclose(other.b, dense.b, rtol=rtol, atol=atol)


@st.composite
def gd_problems(draw, n=None, widths=(1, 2, 7, 64, 513), biases=(0.0, 0.5, 1.0, 2.0, 3.0), antipodal=False):
    """``(X, y, width, bias, lr, init, seed)`` (``n`` a strategy, default 1…40): raw or unit rows at three scales,
    duplicate (and, with ``antipodal``, antipodal) inputs, symmetric init for even widths, steps up to and past the
    stability edge."""
    n = draw(st.integers(1, 40) if n is None else n)
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * draw(st.sampled_from([1.0, 0.3, 3.0]))
    if draw(st.booleans()):
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    if n > 2 and draw(st.booleans()):
        X[1] = X[0]  # duplicate inputs
    if antipodal and n > 3 and draw(st.booleans()):
        X[2] = -X[0]
    y = rng.uniform(-1, 1, n)
    width = draw(st.sampled_from(list(widths)))
    init = "symmetric" if width % 2 == 0 and draw(st.booleans()) else "standard"
    bias = draw(st.sampled_from(list(biases)))
    lr = draw(st.sampled_from([0.01, 0.3, 2.0, 20.0]))
    return X, y, width, bias, lr, init, seed
