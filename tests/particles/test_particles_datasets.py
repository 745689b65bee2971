"""Data sets for the particle runs (particles.datasets)."""

import importlib.util
import sys

import numpy as np
import pytest

from ddsolve.networks.data import DataLaw
from particles.datasets import DatasetKeyError, EmpiricalData, digits, load_npz

needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="scikit-learn not installed")


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)     # makes the import fail
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        digits()


@needs_sklearn
def test_digits_all_classes_standardised():
    x, y = digits()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.dtype == float and y.dtype == float
    assert set(np.unique(y).tolist()) == set(range(10))
    assert np.allclose(x.mean(axis=0), 0, atol=1e-12)
    sd = x.std(axis=0)
    assert np.all(np.isclose(sd, 1) | np.isclose(sd, 0))   # blank border pixels stay 0
    assert np.isclose(sd, 0).sum() >= 1


@needs_sklearn
def test_digits_binary_pair_and_scalings():
    x, y = digits(classes=(0, 1))
    assert x.shape == (360, 64)
    assert set(np.unique(y).tolist()) == {-1.0, 1.0}
    raw, yr = digits(classes=(0, 1), normalize=False)
    assert raw.min() == 0 and raw.max() == 16
    assert np.array_equal(y, yr)
    # +1 is the first class: digit-0 images have a blank centre pixel (row 4, column 4)
    assert raw[y == 1, 36].mean() < raw[y == -1, 36].mean()
    unit, _ = digits(classes=(0, 1), normalize="unit")
    assert np.allclose(unit, raw / 16)
    x3, y3 = digits(classes=[3, 5, 8])
    assert set(np.unique(y3).tolist()) == {3.0, 5.0, 8.0}
    for bad in [(1,), (2, 2), (0, 10), (0.5, 1)]:
        with pytest.raises(ValueError, match="classes"):
            digits(classes=bad)
    with pytest.raises(ValueError, match="normalize"):
        digits(normalize="minmax")


def test_empirical_data_is_a_data_law():
    x = np.arange(20.0).reshape(10, 2)
    y = np.array([1, -1, 2, 0, 1, 1, -1, 3, 0, 1.0])
    data = EmpiricalData(x, y, name="toy")
    assert isinstance(data, DataLaw)
    assert data.dim == 2 and data.size == len(data) == 10
    assert data.risk_offset == pytest.approx(np.mean(y**2))
    xs, ys = data.sample(500, np.random.default_rng(7))
    assert xs.shape == (500, 2) and ys.shape == (500,)
    # every draw is a row of the data (x and y together)
    idx = (xs[:, 0] / 2).astype(int)
    assert np.array_equal(xs, x[idx]) and np.array_equal(ys, y[idx])
    assert len(np.unique(idx)) == 10                      # with replacement, all rows seen
    xs2, ys2 = data.sample(500, np.random.default_rng(7))
    assert np.array_equal(xs, xs2) and np.array_equal(ys, ys2)
    assert not np.array_equal(xs, data.sample(500, np.random.default_rng(8))[0])
    assert data.to_dict() == {"name": "toy", "size": 10, "dim": 2,
                              "risk_offset": data.risk_offset}
    assert data.sample(0, np.random.default_rng(0))[0].shape == (0, 2)
    x[0, 0] = 99.0                                        # the data set keeps its own copy
    assert data.x[0, 0] == 0.0


@needs_sklearn
def test_empirical_data_split():
    x, y = digits(classes=(0, 1))
    data = EmpiricalData(x, y, name="digits01")
    train, test = data.split(0.75, np.random.default_rng(0))
    assert train.size == 270 and test.size == 90 and train.dim == test.dim == 64
    both = np.vstack([train.x, test.x])
    assert np.array_equal(np.sort(both, axis=0), np.sort(x, axis=0))
    assert train.name == "digits01-train" and test.name == "digits01-test"
    again = data.split(0.75, np.random.default_rng(0))[0]
    assert np.array_equal(again.x, train.x)
    assert data.risk_offset == 1.0
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            data.split(bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty"):
        EmpiricalData(x[:3], y[:3]).split(0.1, np.random.default_rng(0))


def test_empirical_data_errors():
    with pytest.raises(ValueError, match="y must have shape"):
        EmpiricalData(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="x must have shape"):
        EmpiricalData(np.zeros((4, 2, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        EmpiricalData([[np.nan]], [1.0])
    with pytest.raises(ValueError, match="n must"):
        EmpiricalData(np.zeros((4, 2)), np.zeros(4)).sample(-1, np.random.default_rng(0))
    one_d = EmpiricalData(np.arange(5.0), np.ones(5))
    assert one_d.dim == 1 and one_d.x.shape == (5, 1)


def test_load_npz_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (12, 4, 4)).astype(np.uint8)
    labels = np.array([0, 1, 2, 1, 0, 2, 1, 0, 1, 2, 0, 1], dtype=np.uint8)
    path = tmp_path / "mini.npz"
    np.savez(path, x=images, y=labels)
    x, y = load_npz(path)
    assert x.shape == (12, 16) and np.array_equal(x, images.reshape(12, 16).astype(float))
    assert np.array_equal(y, labels.astype(float))
    xb, yb = load_npz(path, classes=(1, 2), normalize="unit")
    assert xb.shape == (8, 16) and set(yb.tolist()) == {1.0, -1.0}
    assert xb.min() >= 0 and xb.max() <= 1
    assert np.array_equal(yb, np.where(labels[np.isin(labels, (1, 2))] == 1, 1.0, -1.0))
    # MNIST-style key names
    path2 = tmp_path / "mnist_like.npz"
    np.savez(path2, x_train=images, y_train=labels, x_test=images[:2], y_test=labels[:2])
    x2, y2 = load_npz(path2)
    assert np.array_equal(x2, x) and np.array_equal(y2, y)
    x3, y3 = load_npz(path2, x_key="x_test", y_key="y_test")
    assert x3.shape == (2, 16)
    EmpiricalData(*load_npz(path2, normalize=True))


def test_load_npz_missing_keys(tmp_path):
    path = tmp_path / "odd.npz"
    np.savez(path, features=np.zeros((3, 2)), targets=np.zeros(3))
    with pytest.raises(KeyError, match=r"no x array found.*\['features', 'targets'\]"):
        load_npz(path)
    with pytest.raises(DatasetKeyError, match="no array named 'foo' for x"):
        load_npz(path, x_key="foo", y_key="targets")
    x, y = load_npz(path, x_key="features", y_key="targets")
    assert x.shape == (3, 2) and y.shape == (3,)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match="3 rows but y has 4"):
        load_npz(bad)
    with pytest.raises(ValueError, match="do not occur"):
        load_npz(path, x_key="features", y_key="targets", classes=(0, 7))
