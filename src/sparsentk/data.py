"""Data sets: the paper's toy problem on the sphere, scikit-learn's digits, user files, and MNIST (IDX files)."""

from __future__ import annotations

import gzip
import os
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from sparsentk._io import atomic_write_bytes
from sparsentk._memory import require_memory
from sparsentk._validate import check_choice, check_float, check_int, check_matrix, check_vector

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Public mirrors tried in order by :func:`mnist` when the files are not found locally and ``download=True``
#: (never by default: sparsentk downloads nothing unless asked).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_ENV = "SPARSENTK_MNIST_DIR"


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def sphere(
    n: int,
    dim: int,
    *,
    teacher: str = "relu",
    noise: float = 0.0,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Unit inputs uniform on the sphere with labels from a fixed unit teacher :math:`w^*`.

    .. math::

        x_i = g_i / \|g_i\|,\; g_i \sim N(0, I_d); \qquad
        y_i = \mathrm{relu}(w^* \cdot x_i) \text{ or } w^* \cdot x_i, \;\; \text{plus } N(0, \text{noise}^2).

    The paper's Figure 2 uses such a toy regression (paper-notes §4); :math:`|y_i| \le 1` holds without noise.
    Returns ``(X, y)`` in float64.
    """
    n = check_int(n, "n", minimum=1)
    dim = check_int(dim, "dim", minimum=1)
    teacher = check_choice(teacher, "teacher", ("relu", "linear"))
    noise = check_float(noise, "noise", minimum=0.0)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    require_memory(16.0 * n * dim, "n", f"{n} points in dimension {dim}")
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal(dim)
    w_star /= np.linalg.norm(w_star)
    X = _unit_rows(rng.standard_normal((n, dim)))
    y = X @ w_star
    if teacher == "relu":
        y = np.maximum(y, 0.0)
    if noise:
        y = y + noise * rng.standard_normal(n)
    return X, y


def digits(*, positive: tuple[int, ...] = (0, 2, 4, 6, 8)) -> tuple[np.ndarray, np.ndarray]:
    r"""scikit-learn's bundled 8×8 digits (1797 images, offline) as a regression problem.

    Rows are normalized to unit norm; :math:`y_i = +1` when the digit is in ``positive`` (default: even digits),
    else :math:`-1`.
    """
    if isinstance(positive, str | bytes) or not hasattr(positive, "__iter__"):
        raise TypeError(f"positive: expected a collection of digits 0-9, got {positive!r}")
    positive = tuple(positive)
    if not positive or not all(isinstance(d, int | np.integer) and 0 <= d <= 9 for d in positive):
        raise ValueError(f"positive: expected a non-empty collection of digits 0-9, got {positive!r}")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = _unit_rows(bunch.data.astype(np.float64))
    y = np.where(np.isin(bunch.target, positive), 1.0, -1.0)
    return X, y


def load(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(X, y)`` from a user file.

    - ``.npz`` with arrays ``X`` (n × d) and ``y`` (n,);
    - ``.npy`` holding ``X``; labels in the sibling file whose stem has its last ``X`` replaced by ``y``
      (``X.npy`` → ``y.npy``, ``train_X.npy`` → ``train_y.npy``); a directory means ``X.npy`` and ``y.npy`` in it;
    - ``.csv`` (optional header row): every column but the last is ``X``, the last is ``y``.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path: expected a file path, got {path!r}")
    path = Path(path)
    if path.is_dir():
        path = path / "X.npy"
    if not path.exists():
        raise ValueError(f"path: no such data file {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            arrays = _read_npz(path)
            if {"X", "y"} - set(arrays):
                raise ValueError(f"path: {str(path)!r} must hold arrays 'X' and 'y', found {sorted(arrays)}")
            X, y = arrays["X"], arrays["y"]
        elif suffix == ".npy":
            stem = path.stem
            if "X" not in stem:
                raise ValueError(f"path: cannot find the labels for {str(path)!r}: its name must contain 'X'")
            cut = stem.rindex("X")
            y_path = path.with_name(stem[:cut] + "y" + stem[cut + 1 :] + path.suffix)
            if not y_path.exists():
                raise ValueError(f"path: labels file {str(y_path)!r} (beside {str(path)!r}) not found")
            X, y = _read_npy(path), _read_npy(y_path)
        elif suffix == ".csv":
            X, y = _read_csv(path)
        else:
            raise ValueError(f"path: expected a .npz, .npy or .csv file or a directory, got {str(path)!r}")
    except (OSError, EOFError) as err:
        raise ValueError(f"path: cannot read {str(path)!r}: {err}") from err
    try:
        X = check_matrix(X, "X", dtype=np.float64)
        y = check_vector(y, "y", length=X.shape[0], dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise type(err)(f"path: the data in {str(path)!r} are not usable: {err}") from None
    return X, y


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, EOFError, KeyError, OSError) as err:
        raise ValueError(f"path: {str(path)!r} is not a readable .npz file (truncated or corrupt?): {err}") from err
    except ValueError as err:
        raise ValueError(f"path: {str(path)!r} is not a readable .npz file (without pickled objects): {err}") from err


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"path: {str(path)!r} is not a readable .npy file (without pickled objects): {err}") from err


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"path: {str(path)!r} is not a text CSV file: {err}") from err
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"path: {str(path)!r} is empty")
    try:
        float(lines[0].split(",")[0])
        start = 0
    except ValueError:
        start = 1
    try:
        table = np.array([[float(v) for v in line.split(",")] for line in lines[start:]], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"path: malformed CSV {str(path)!r}: {err}") from err
    if table.ndim != 2 or table.shape[1] < 2 or table.shape[0] < 1:
        raise ValueError(f"path: CSV {str(path)!r} needs at least two columns (features..., label) and one row")
    return table[:, :-1], table[:, -1]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``), the format of the MNIST database; returns the array it holds."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(f"path: cannot read IDX file {str(path)!r}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"path: {str(path)!r} is not an IDX file (bad magic number)")
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in types:
        raise ValueError(f"path: {str(path)!r} has unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"path: {str(path)!r} is truncated (header)")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(types[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"path: {str(path)!r} is truncated or padded: shape {shape} needs {expected} bytes, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download_mnist(folder: Path) -> bool:
    for mirror in MNIST_MIRRORS:
        try:
            for names in MNIST_FILES.values():
                for name in names:
                    if _find_idx(folder, name) is None:
                        with urllib.request.urlopen(f"{mirror}{name}.gz", timeout=20) as resp:
                            atomic_write_bytes(folder / f"{name}.gz", resp.read())
            return True
        except OSError:
            continue
    return False


def mnist_dir(data_dir: str | os.PathLike | None = None, *, download: bool = False) -> Path:
    """The folder holding the four MNIST IDX files.

    Looks in ``data_dir``, then ``$SPARSENTK_MNIST_DIR``, then ``~/.cache/sparsentk/mnist``. Nothing is downloaded
    unless ``download=True`` (then the files are fetched into the cache from ``MNIST_MIRRORS`` when the network
    allows). Raises ``FileNotFoundError`` naming every place it looked.
    """
    places = []
    if data_dir is not None:
        places.append(Path(data_dir))
    if os.environ.get(MNIST_ENV):
        places.append(Path(os.environ[MNIST_ENV]))
    cache = Path.home() / ".cache" / "sparsentk" / "mnist"
    places.append(cache)
    needed = [name for names in MNIST_FILES.values() for name in names]
    for folder in places:
        if all(_find_idx(folder, name) for name in needed):
            return folder
    if data_dir is None and download and _download_mnist(cache):
        return cache
    raise FileNotFoundError(
        "data_dir: MNIST IDX files (train-images-idx3-ubyte[.gz] and the other three) not found in "
        + ", ".join(repr(str(p)) for p in places)
        + (" and the download failed" if data_dir is None and download else
           "; point data_dir (or $SPARSENTK_MNIST_DIR) at them, or pass download=True")
    )


def mnist(
    data_dir: str | os.PathLike | None = None, *, split: str = "train", download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images (float32, n × 784, scaled to [0, 1]) and labels (int64) of ``split`` ("train" or "test").

    See :func:`mnist_dir` for where the files are looked for; nothing is downloaded unless ``download=True``.
    """
    split = check_choice(split, "split", tuple(MNIST_FILES))
    folder = mnist_dir(data_dir, download=download)
    img_name, lab_name = MNIST_FILES[split]
    images = read_idx(_find_idx(folder, img_name))
    labels = read_idx(_find_idx(folder, lab_name))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"data_dir: MNIST files in {str(folder)!r} do not match: images {images.shape}, labels {labels.shape}"
        )
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)
