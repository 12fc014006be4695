import gzip
import struct

import numpy as np
import pytest

import sparsentk as snt
from sparsentk import data


def write_idx(path, array, gz=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    arr = np.asarray(array)
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = header + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_sphere_unit_rows_and_teacher():
    X, y = data.sphere(200, 6, teacher="relu", seed=1)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    assert X.shape == (200, 6) and y.shape == (200,)
    assert np.all(y >= 0) and np.all(y <= 1)
    # labels come from one unit teacher: least squares on the positive part recovers a unit vector
    pos = y > 1e-9
    w, *_ = np.linalg.lstsq(X[pos], y[pos], rcond=None)
    assert np.linalg.norm(w) == pytest.approx(1.0)
    X2, y2 = data.sphere(200, 6, teacher="linear", seed=1)
    np.testing.assert_allclose(X2 @ w, y2, atol=1e-12)


def test_sphere_noise_and_seed():
    a = data.sphere(50, 3, seed=4, noise=0.1)
    b = data.sphere(50, 3, seed=4, noise=0.1)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], data.sphere(50, 3, seed=4)[1])
    with pytest.raises(ValueError, match="noise"):
        data.sphere(5, 3, noise=-1)
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        data.sphere(0, 3)
    with pytest.raises(ValueError, match="teacher"):
        data.sphere(5, 3, teacher="tanh")


def test_digits_offline():
    X, y = data.digits()
    assert X.shape == (1797, 64)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    assert set(np.unique(y)) == {-1.0, 1.0}


def test_load_npz_npy_csv_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((7, 3)), rng.standard_normal(7)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    for got in (data.load(tmp_path / "d.npz"),):
        np.testing.assert_array_equal(got[0], X)
        np.testing.assert_array_equal(got[1], y)
    np.save(tmp_path / "train_X.npy", X)
    np.save(tmp_path / "train_y.npy", y)
    np.testing.assert_array_equal(data.load(tmp_path / "train_X.npy")[1], y)
    sub = tmp_path / "dir"
    sub.mkdir()
    np.save(sub / "X.npy", X)
    np.save(sub / "y.npy", y)
    np.testing.assert_array_equal(data.load(sub)[0], X)
    table = np.column_stack([X, y])
    (tmp_path / "d.csv").write_text("a,b,c,label\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in table))
    got = data.load(tmp_path / "d.csv")
    np.testing.assert_array_equal(got[0], X)
    np.testing.assert_array_equal(got[1], y)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no such data file"):
        data.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", A=np.zeros(3))
    with pytest.raises(ValueError, match="must hold arrays 'X' and 'y'"):
        data.load(tmp_path / "bad.npz")
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="path"):
        data.load(tmp_path / "broken.npz")
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    with pytest.raises(ValueError, match="malformed CSV"):
        data.load(tmp_path / "bad.csv")
    np.savez(tmp_path / "nan.npz", X=np.array([[np.nan, 1.0]]), y=np.zeros(1))
    with pytest.raises(ValueError, match="X: expected finite values"):
        data.load(tmp_path / "nan.npz")
    np.savez(tmp_path / "len.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(ValueError, match="y: expected length 3"):
        data.load(tmp_path / "len.npz")
    (tmp_path / "d.txt").write_text("1")
    with pytest.raises(ValueError, match=r"expected a \.npz, \.npy or \.csv"):
        data.load(tmp_path / "d.txt")


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip_and_errors(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    name = "a.idx.gz" if gz else "a.idx"
    write_idx(tmp_path / name, arr, gz=gz)
    np.testing.assert_array_equal(data.read_idx(tmp_path / name), arr)
    ints = np.array([1, -2, 300], dtype=">i4")
    write_idx(tmp_path / "i.idx", ints)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "i.idx"), [1, -2, 300])
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="bad magic"):
        data.read_idx(tmp_path / "bad.idx")
    raw = (tmp_path / "a.idx.gz").read_bytes() if gz else (tmp_path / "a.idx").read_bytes()
    raw = gzip.decompress(raw) if gz else raw
    (tmp_path / "short.idx").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "short.idx")


def test_mnist_reads_a_folder_of_idx_files(tmp_path, monkeypatch):
    monkeypatch.delenv(data.MNIST_ENV, raising=False)
    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("test", 3)):
        img, lab = data.MNIST_FILES[split]
        write_idx(tmp_path / f"{img}.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), gz=True)
        write_idx(tmp_path / lab, rng.integers(0, 10, n, dtype=np.uint8))
    X, y = snt.data.mnist(tmp_path, split="test")
    assert X.shape == (3, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0 <= X.min() and X.max() <= 1
    monkeypatch.setenv(data.MNIST_ENV, str(tmp_path))
    assert snt.data.mnist(split="train")[0].shape == (5, 784)


def test_mnist_pixels_and_label_pairing_on_known_files(tmp_path, monkeypatch):
    """Image k of each split is a known picture (its label k mod 10 drawn as a bar in row label, plus a diagonal
    and one marked pixel): the reader must keep pixel order, scale by 255 and pair every image with its label."""
    monkeypatch.delenv(data.MNIST_ENV, raising=False)
    expected = {}
    for split, n, marker in (("train", 12, 255), ("test", 7, 128)):
        labels = (np.arange(n) * 7 + 3) % 10
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for k, label in enumerate(labels):
            images[k, label, 2:26] = 200  # the label as a horizontal bar at row `label`
            images[k, np.arange(28), np.arange(28)] = k + 1  # the image index along the diagonal
            images[k, 27, 0] = marker  # bottom-left: which split
        img, lab = data.MNIST_FILES[split]
        write_idx(tmp_path / f"{img}.gz", images, gz=True)
        write_idx(tmp_path / lab, labels.astype(np.uint8))
        expected[split] = (images, labels)
    for split, (images, labels) in expected.items():
        X, y = snt.data.mnist(tmp_path, split=split)
        np.testing.assert_array_equal(y, labels)
        np.testing.assert_allclose(X, images.reshape(len(images), 784) / 255.0, rtol=1e-6)
        for k in range(len(y)):
            picture = X[k].reshape(28, 28)
            assert picture[y[k], 10] == pytest.approx(200 / 255)  # the bar sits in the row of its own label
            assert picture[27, 27] == pytest.approx((k + 1) / 255) and picture[5, 5] == pytest.approx((k + 1) / 255)
            assert picture[27, 0] == pytest.approx((255 if split == "train" else 128) / 255)
        assert X[0, 0] == pytest.approx(1 / 255) and X[0, 783] == pytest.approx(1 / 255)  # first and last pixel


def test_mnist_missing_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(data.MNIST_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="MNIST IDX files"):
        data.mnist(tmp_path / "empty", download=False)
