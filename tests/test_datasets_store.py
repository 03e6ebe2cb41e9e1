"""The data directory: where the files are looked for (argument, $SCRATCHDL_DATA, the cache),
the names they may have, their pinned sha256, and what verify and where report."""

from __future__ import annotations

import gzip
import re

import pytest

from scratchdl import datasets as ds
from tests.conftest import put, sha256

pytestmark = pytest.mark.usefixtures("offline_data")


def test_data_dir_precedence(tmp_path, monkeypatch, fake_mnist):
    for folder in ("arg", "env", "cache/scratchdl"):
        put(tmp_path / folder / "mnist", fake_mnist)
    monkeypatch.setenv(ds.ENV_DATA, str(tmp_path / "env"))
    assert ds.fetch("mnist", data_dir=tmp_path / "arg") == tmp_path / "arg" / "mnist"
    assert ds.fetch("mnist") == tmp_path / "env" / "mnist"
    assert ds.where("mnist")["mnist"]["data_dir_from"] == "$SCRATCHDL_DATA"
    monkeypatch.delenv(ds.ENV_DATA)
    assert ds.fetch("mnist") == tmp_path / "cache" / "scratchdl" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ds.where("mnist")["mnist"]["data_dir"] == str(tmp_path / "home" / ".cache" / "scratchdl")


def test_flat_and_dotted_names_are_found(tmp_path, fake_mnist):
    put(tmp_path, fake_mnist)
    for path in tmp_path.glob("*-idx*"):
        path.rename(path.with_name(path.name.replace("-idx", ".idx")))
    assert ds.fetch("mnist", data_dir=tmp_path, progress=False) == tmp_path
    (x, t), _ = ds.load_mnist(data_dir=tmp_path, progress=False)
    assert x.shape == (5, 784)


def test_flat_dir_of_the_other_data_set_is_passed_over(tmp_path, fake_mnist, fake_fashion):
    put(tmp_path, fake_mnist)  # MNIST lies flat in the data dir; Fashion-MNIST is asked for
    with pytest.raises(ds.DatasetNotFoundError, match="Fashion-MNIST not found"):
        ds.load_fashion_mnist(data_dir=tmp_path, progress=False)
    put(tmp_path / "fashion-mnist", fake_fashion)
    (x, _), _ = ds.load_fashion_mnist(data_dir=tmp_path, progress=False)
    assert x.shape == (4, 784)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_checksum_mismatch_in_data_dir_is_an_error(tmp_path, monkeypatch, fake_mnist, mirror, gz):
    paths = put(tmp_path / "mnist", fake_mnist, gz=gz)
    ds.load_mnist(data_dir=tmp_path, progress=False)
    bad = paths[2]
    data = bytearray(gzip.decompress(bad.read_bytes()) if gz else bad.read_bytes())
    data[-1] ^= 0xFF  # still a valid IDX file, just not the pinned one
    bad.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    # a good mirror is there, but a damaged file must be reported, not replaced silently
    monkeypatch.setitem(ds.MIRRORS, "mnist", (mirror.add("/m/", fake_mnist),))
    expected = ds.SHA256["mnist"]["t10k-images-idx3-ubyte"]
    calls = [
        lambda: ds.load_mnist(data_dir=tmp_path, progress=False),
        lambda: ds.fetch("mnist", data_dir=tmp_path, progress=False),
        lambda: ds.verify("mnist", data_dir=tmp_path),
    ]
    for call in calls:
        with pytest.raises(ds.ChecksumError) as info:
            call()
        message = str(info.value)
        assert str(bad) in message and expected in message and sha256(data) in message
        assert "scratchdl data fetch mnist" in message
        assert ("decompressed content" in message) == gz
    assert mirror.requests == []


def test_damaged_gzip_in_data_dir_is_an_error(tmp_path, fake_mnist):
    paths = put(tmp_path / "mnist", fake_mnist, gz=True)
    paths[0].write_bytes(paths[0].read_bytes()[:-1])
    with pytest.raises(ValueError, match=re.escape(str(paths[0])) + ": truncated gzip data"):
        ds.load_mnist(data_dir=tmp_path, progress=False)


# ---------------------------------------------------------------------- verify and where


def test_verify_and_where(tmp_path, fake_mnist):
    with pytest.raises(ds.DatasetNotFoundError, match="no verified copy"):
        ds.verify("mnist")
    info = ds.where()
    assert set(info) == set(ds.DATASETS)
    assert info["mnist"]["used"] is None and info["mnist"]["files"][ds.FILES[0]] is None
    paths = put(tmp_path / "cache" / "scratchdl" / "mnist", fake_mnist)
    sums = ds.verify("mnist")
    assert sums == {str(p): sha256(p.read_bytes()) for p in paths}
    manifest = paths[0].parent / ds.MANIFEST
    lines = manifest.read_text().splitlines()
    paths = sorted(paths)  # the manifest is sorted by file name
    assert lines == [f"{sha256(p.read_bytes())}  {p.name}" for p in paths]
    info = ds.where("mnist")
    assert list(info) == ["mnist"]
    assert info["mnist"]["used"] == str(paths[0].parent)
    assert info["mnist"]["searched"][0] == str(paths[0].parent)


@pytest.mark.parametrize("call", [ds.fetch, ds.verify, ds.where])
def test_unknown_name_lists_the_choices(call):
    with pytest.raises(ValueError, match="unknown data set 'cifar10'; choose one of: mnist, fash"):
        call("cifar10")
