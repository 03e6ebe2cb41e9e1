"""A data folder that cannot hold the data: a file in its place, or a read-only folder, is
named as such, with the fix, before anything is fetched."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from scratchdl import datasets as ds
from tests.conftest import listing, put

pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.mark.parametrize("how", ["data_dir", "env", "under a file"])
def test_a_data_dir_that_is_a_file_is_named_as_one(tmp_path, monkeypatch, fake_mnist, mirror, how):
    afile = tmp_path / "afile"
    afile.write_bytes(b"not a folder")
    base = mirror.add("/m/", fake_mnist)
    root = afile / "sub" if how == "under a file" else afile
    if how == "env":
        monkeypatch.setenv(ds.ENV_DATA, str(root))
    kwargs = {} if how == "env" else {"data_dir": root}
    origin = "$SCRATCHDL_DATA" if how == "env" else "the data_dir argument"
    what = f"cannot be a folder: {afile} is a file" if how == "under a file" else "is a file"
    for call in (
        lambda: ds.load_mnist(progress=False, **kwargs),
        lambda: ds.fetch("mnist", mirrors=[base], progress=False, **kwargs),
        lambda: ds.verify("mnist", **kwargs),
        lambda: ds.where("mnist", **kwargs),
    ):
        with pytest.raises(NotADirectoryError) as info:
            call()
        message = str(info.value)
        assert f"the data directory {root} (from {origin}) {what}, not a folder" in message
        assert "--data-dir" in message and "$SCRATCHDL_DATA" in message
        assert "does not exist" not in message and "not found" not in message
    assert mirror.requests == []  # nothing was fetched for a folder that cannot hold it
    assert afile.read_bytes() == b"not a folder"


def test_a_file_where_the_data_sets_folder_belongs_is_named_as_one(tmp_path, fake_mnist, mirror):
    (tmp_path / "mnist").write_bytes(b"")
    base = mirror.add("/m/", fake_mnist)
    with pytest.raises(
        NotADirectoryError,
        match=re.escape(
            f"cannot put the MNIST files in {tmp_path / 'mnist'}: it is a file, not a folder"
        ),
    ):
        ds.fetch("mnist", data_dir=tmp_path, mirrors=[base], progress=False)
    assert mirror.requests == []
    with pytest.raises(
        ds.DatasetNotFoundError, match=re.escape(f"{tmp_path / 'mnist'}: is a file, not a folder")
    ):
        ds.verify("mnist", data_dir=tmp_path)


def read_only(folder: Path, monkeypatch) -> list[str]:
    """Make ``folder`` read-only; return the list of the creations refused in it.

    chmod a-w is what a user does, and the kernel enforces it for everyone but root. Where
    the tests run as root, os.open and os.mkdir (which tempfile, Path.mkdir and atomic_write
    go through) refuse to create anything in the folder as the kernel would refuse a user:
    the code under test still makes its real calls and gets the real kind of error.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    refused: list[str] = []
    if os.geteuid() != 0:
        return refused
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(path) -> bool:
        path = Path(os.fsdecode(path)).absolute()
        if path.parent == folder and not path.exists():
            refused.append(str(path))
            return True
        return False

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):
        if dir_fd is None and flags & os.O_CREAT and refuse(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fake_mkdir(path, mode=0o777, *, dir_fd=None):
        if dir_fd is None and refuse(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    return refused


@pytest.fixture
def make_read_only(monkeypatch):
    made = []

    def make(folder: Path) -> list[str]:
        made.append(folder)
        return read_only(folder, monkeypatch)

    yield make
    for folder in made:
        folder.chmod(0o755)  # so that pytest can remove tmp_path


@pytest.mark.parametrize("which", ["the data dir", "its mnist folder"])
def test_a_read_only_data_dir_says_so_before_fetching(
    tmp_path, fake_mnist, mirror, make_read_only, which
):
    root = tmp_path / "data"
    folder = root if which == "the data dir" else root / "mnist"
    refused = make_read_only(folder)
    base = mirror.add("/m/", fake_mnist)
    for call in (
        lambda: ds.fetch("mnist", data_dir=root, mirrors=[base], progress=False),
        lambda: ds.load_mnist(data_dir=root, progress=False),
    ):
        with pytest.raises(PermissionError) as info:
            call()
        message = str(info.value)
        for words in [
            f"MNIST must be fetched into {root / 'mnist'}",
            f"{folder} is read-only",
            "make it writable",
            "--data-dir",
            "$SCRATCHDL_DATA",
        ]:
            assert words in message, (words, message)
    assert mirror.requests == []  # asked before anything is downloaded
    assert listing(folder) == []  # and nothing is left behind
    assert refused or os.geteuid() != 0  # as root, the refusal really was met


def test_a_read_only_data_dir_with_the_files_in_it_loads(tmp_path, fake_mnist, make_read_only):
    put(tmp_path / "data" / "mnist", fake_mnist)
    make_read_only(tmp_path / "data" / "mnist")
    (x, t), _ = ds.load_mnist(data_dir=tmp_path / "data", progress=False)
    assert x.shape == (5, 784)  # nothing needed writing: no error (and no SHA256SUMS)
    assert ds.MANIFEST not in listing(tmp_path / "data" / "mnist")
