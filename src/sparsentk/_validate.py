"""Boundary checks shared by every public entry point.

Each helper raises ``ValueError`` or ``TypeError`` whose message names the argument, what was expected and what
came, and returns the value in canonical form (NumPy array of the right dtype, Python ``int`` or ``float``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """Return ``dtype`` as float32 or float64, or raise naming ``name``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name}: expected float32 or float64, got {_describe(dtype)}") from err
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {dt}")
    return dt


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` (bools refused), at least ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name}: expected an integer, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {kind}, got {value}")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` within the given limits."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        else:
            raise TypeError(f"{name}: expected a real number, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name}: expected a positive number, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected a number >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected a number <= {maximum}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {_describe(value)}")
    return value


def _as_float_array(value: Any, name: str, dtype: Any) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name}: expected a numeric array, got {_describe(value)}") from err
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    target = np.float64 if dtype is None else dtype
    if dtype is None and arr.dtype in FLOAT_DTYPES:
        target = arr.dtype
    return np.ascontiguousarray(arr, dtype=target)


def _check_finite(arr: np.ndarray, name: str) -> None:
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = tuple(int(i) for i in bad)
        raise ValueError(
            f"{name}: expected finite values, got {arr.reshape(-1)[np.ravel_multi_index(bad, arr.shape)]}"
            f" at index {where if len(where) > 1 else where[0]}"
        )


def check_matrix(
    value: Any,
    name: str,
    *,
    dim: int | None = None,
    dtype: Any = None,
    min_rows: int = 1,
) -> np.ndarray:
    """Return a C-contiguous finite 2-D float array (rows are samples).

    ``dim`` fixes the number of columns; ``dtype`` fixes the float type (default: keep float32/float64, else
    float64).
    """
    arr = _as_float_array(value, name, dtype)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, dim), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} row(s), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} columns to match dim={dim}, got shape {arr.shape}")
    _check_finite(arr, name)
    return arr


def check_vector(value: Any, name: str, *, length: int | None = None, dtype: Any = None) -> np.ndarray:
    """Return a finite 1-D float array, of ``length`` entries if given (an (n, 1) column is accepted)."""
    arr = _as_float_array(value, name, dtype)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name}: expected length {length} (one entry per row of X), got length {arr.shape[0]}")
    _check_finite(arr, name)
    return np.ascontiguousarray(arr)


def check_square(value: Any, name: str, *, symmetric: bool = False, rtol: float = 1e-10) -> np.ndarray:
    """Return a finite square float64 matrix; with ``symmetric``, refuse one that is not symmetric."""
    arr = check_matrix(value, name, dtype=np.float64)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {arr.shape}")
    if symmetric:
        scale = max(float(np.abs(arr).max(initial=0.0)), 1e-300)
        asym = float(np.abs(arr - arr.T).max(initial=0.0))
        if asym > rtol * scale:
            raise ValueError(
                f"{name}: expected a symmetric matrix, got max |K - K^T| = {asym:.3g} (relative {asym / scale:.3g})"
            )
    return arr
