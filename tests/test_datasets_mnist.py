"""The loaders: load_mnist's flags and arrays on tiny synthetic IDX files, the real MNIST when it
is in the user cache (skipped otherwise), and the MNIST sample shipped with the package."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from scratchdl import datasets as ds
from scratchdl.datasets import mnist, store
from tests.conftest import put

REAL_ROOT = store.data_root(None)[0]  # read before any test redirects the environment
pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_from_data_dir_all_flags(tmp_path, fake_mnist, gz):
    put(tmp_path / "data" / "mnist", fake_mnist, gz=gz)
    x_raw, t_raw = fake_mnist["train-images-idx3-ubyte"], fake_mnist["train-labels-idx1-ubyte"]
    for normalize, flatten, one_hot in itertools.product([True, False], repeat=3):
        (x, t), (x_test, t_test) = ds.load_mnist(
            normalize, flatten, one_hot, data_dir=tmp_path / "data", progress=False
        )
        assert x.shape == ((5, 784) if flatten else (5, 1, 28, 28))
        assert x_test.shape == ((3, 784) if flatten else (3, 1, 28, 28))
        assert x.flags.writeable and x.flags.c_contiguous
        if normalize:
            assert x.dtype == np.float32
            np.testing.assert_array_equal(x.reshape(5, 28, 28), x_raw.astype(np.float32) / 255)
        else:
            assert x.dtype == np.uint8
            np.testing.assert_array_equal(x.reshape(5, 28, 28), x_raw)
        if one_hot:
            assert t.dtype == np.float32 and t.shape == (5, 10) and t_test.shape == (3, 10)
            np.testing.assert_array_equal(t.argmax(axis=1), t_raw)
            np.testing.assert_array_equal(t.sum(axis=1), np.ones(5))
        else:
            assert t.dtype == np.int64 and t.shape == (5,) and t_test.shape == (3,)
            np.testing.assert_array_equal(t, t_raw)


def test_loaded_arrays_are_independent(tmp_path, fake_mnist):
    put(tmp_path / "mnist", fake_mnist)
    (x, _), _ = ds.load_mnist(normalize=False, data_dir=tmp_path, progress=False)
    x[:] = 0
    (y, _), _ = ds.load_mnist(normalize=False, data_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(y.reshape(5, 28, 28), fake_mnist["train-images-idx3-ubyte"])


@pytest.mark.parametrize("flag", ["normalize", "flatten", "one_hot_label", "progress"])
def test_flags_must_be_bool(flag):
    with pytest.raises(ValueError, match=f"{flag} must be True or False, got 'False'"):
        ds.load_mnist(**{flag: "False"})


def test_real_mnist_when_cached():
    folder = REAL_ROOT / "mnist"
    if not all(store.find_file("mnist", REAL_ROOT, f) for f in ds.FILES):
        pytest.skip(f"the real MNIST is not in {folder}; run `scratchdl data fetch mnist`")
    (x, t), (x_test, t_test) = ds.load_mnist(one_hot_label=True, data_dir=REAL_ROOT, progress=False)
    assert x.shape == (60000, 784) and x_test.shape == (10000, 784) and x.dtype == np.float32
    assert t.shape == (60000, 10) and t_test.shape == (10000, 10) and t.dtype == np.float32
    assert 0 <= x.min() and x.max() == 1
    assert abs(float(x.mean()) - 0.1307) < 1e-3
    np.testing.assert_array_equal(t.sum(axis=0)[:2], [5923, 6742])  # the known class counts
    assert os.path.exists(folder / ds.MANIFEST)


def test_the_shipped_mnist_sample_loads_offline_and_is_verified(monkeypatch):
    (x, t), (xt, tt) = ds.load_mnist_sample(flatten=False)
    assert x.shape == (2000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert x.dtype == np.float32 and 0.12 < x.mean() < 0.14
    assert list(t[:5]) == [5, 0, 4, 1, 9] and set(np.unique(tt)) == set(range(10))
    one_hot = ds.load_mnist_sample(one_hot_label=True)[1][1]
    assert one_hot.shape == (1000, 10)
    monkeypatch.setitem(mnist.SAMPLE_SHA256, "t10k-labels-idx1-ubyte", "0" * 64)
    with pytest.raises(ds.ChecksumError, match="t10k-labels"):
        ds.load_mnist_sample()
