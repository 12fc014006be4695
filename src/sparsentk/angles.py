r"""Angles between inputs and between model gradients (P2 = Liu, Bi, Hui, Liu, arXiv 2305.08813, §3).

The model-gradient angle of two inputs is the angle between :math:`\nabla_w f(x)` and :math:`\nabla_w f(z)`, read off
any NTK :math:`K(x, z) = \langle\nabla_w f(x), \nabla_w f(z)\rangle`:

.. math:: \varphi(x, z) = \arccos\frac{K(x, z)}{\sqrt{K(x, x)\,K(z, z)}}.

P2's claim (Lemma 3.1, Theorem 3.5): ReLU makes :math:`\varphi > \theta_{in}` for similar inputs, more so with depth,
and :math:`\varphi \to \arccos(1/4)` as the depth grows (:func:`sparsentk.theory.gradient_angle_relu`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparsentk import _gram
from sparsentk._validate import check_matrix, check_square


def gradient_angles(K: Any) -> np.ndarray:
    r"""Model-gradient angles :math:`\varphi_{ij} = \arccos\big(K_{ij}/\sqrt{K_{ii}K_{jj}}\big)` (radians) from an
    NTK matrix.

    The result is exactly symmetric with a zero diagonal. Near :math:`\varphi = 0` the precision is limited by the
    kernel's own rounding (an angle below about :math:`\sqrt{\epsilon}\approx 10^{-8}` is not resolved by any
    function of K alone).

    Parameters
    ----------
    K : array, shape (n, n)
        Symmetric kernel matrix with a positive diagonal.

    Returns
    -------
    ndarray, shape (n, n) of float64, in [0, π]
    """
    K = check_square(K, "K", symmetric=True, rtol=1e-8)
    d = np.diagonal(K).copy()
    if np.any(d <= 0):
        bad = int(np.argmax(d <= 0))
        raise ValueError(f"K: expected a positive diagonal (a gradient of zero norm has no angle), got K[{bad},{bad}] "
                         f"= {d[bad]:.6g}")
    inv = 1.0 / np.sqrt(d)
    C = (0.5 * (K + K.T)) * np.outer(inv, inv)  # products of symmetric arrays: exactly symmetric
    phi = np.arccos(np.clip(C, -1.0, 1.0))
    np.fill_diagonal(phi, 0.0)
    return phi


def input_angles(X: Any, Y: Any = None) -> np.ndarray:
    r"""Angles :math:`\theta_{ij} = \angle(x_i, y_j)` (radians) between the rows of ``X`` (and ``Y``).

    .. math::

        \theta = \arccos\frac{x\cdot y}{\|x\|\|y\|}\ \text{(well-conditioned pairs)},\qquad
        \theta = 2\,\mathrm{atan2}(\|u - v\|, \|u + v\|)\ \text{(near-parallel and near-antipodal pairs)}

    with :math:`u, v` the unit rows: accurate to a few ulps at every angle, including 0 and π. Symmetric case:
    exactly symmetric, zero diagonal. Rows must be non-zero.
    """
    X = check_matrix(X, "X", dtype=np.float64)
    Y = None if Y is None else check_matrix(Y, "Y", dim=X.shape[1], dtype=np.float64)
    for name, A in (("X", X), ("Y", Y)):
        if A is not None:
            zero = ~np.any(A != 0, axis=1)
            if zero.any():
                raise ValueError(f"{name}: expected non-zero rows (a zero row has no angle), got a zero row at index "
                                 f"{int(np.argmax(zero))}")
    return _gram.row_angles(X, Y)


def min_angle(A: Any) -> float:
    r"""The smallest off-diagonal entry :math:`\min_{i \ne j} A_{ij}` of a square angle matrix (P2's "minimum
    pairwise angle"); for a non-square (cross) matrix, the smallest entry."""
    A = check_matrix(A, "A", dtype=np.float64)
    if A.shape[0] == A.shape[1]:
        if A.shape[0] < 2:
            raise ValueError(f"A: expected at least 2 rows to have an off-diagonal pair, got shape {A.shape}")
        off = ~np.eye(A.shape[0], dtype=bool)
        return float(A[off].min())
    return float(A.min())
