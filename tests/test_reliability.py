"""Reliability: hostile and damaged files, killed runs, full disks, divergence, determinism.

The fuzz run of benchmarks/fuzz.py (10 000 cases per format) is the heavy version of the
property tests here; these keep modest example counts so that the suite stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import pickle
import pickletools
import re
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchdl import cli, datasets, files
from scratchdl.files import ModelFileError, import_book_params, load_tensors
from scratchdl.models import TwoLayerNet
from scratchdl.trainer import Trainer
from tests.conftest import (
    MUTATION,
    assert_one_line_error,
    blobs,
    book_like_params,
    encode_idx,
    expect_error,
    header_end,
    make_trainer,
    mnist_slice,
    mutate,
    run,
    small_convnet,
)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HAS_PROC_FD = Path("/proc/self/fd").is_dir()  # to tell which file an fsync is for


@pytest.fixture
def slice_data(monkeypatch):
    """Serve the MNIST sample shipped with the package instead of the full data set."""
    data = mnist_slice()
    monkeypatch.setattr(cli, "load_dataset", lambda name, data_dir=None: data)
    return data


# --- hostile pickles: payloads spliced into a valid book file ---------------------------------


def _text(b: bytes) -> bytes:
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def _payload_ops(sentinel: Path) -> dict[str, bytes]:
    """Opcode sequences that create ``sentinel`` when a plain unpickler meets them."""
    cmd = _text(f"touch {sentinel}".encode())
    return {
        "INST": b"(" + cmd + b"ios\nsystem\n",
        "OBJ": b"(cos\nsystem\n" + cmd + b"o",
        "STACK_GLOBAL": _text(b"os") + _text(b"system") + b"\x93" + cmd + b"\x85R",
        "subprocess": b"csubprocess\ncall\n("
        + _text(b"touch")
        + _text(str(sentinel).encode())
        + b"l\x85R",  # fmt: skip
        "getattr_import": b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n"
        + _text(b"os")
        + b"\x85R"
        + _text(b"system")
        + b"tR"
        + cmd
        + b"\x85R",  # fmt: skip
        "open": b"cbuiltins\nopen\n" + _text(str(sentinel).encode()) + _text(b"w") + b"\x86R",
    }


@pytest.mark.parametrize("kind", list(_payload_ops(Path("s"))))
def test_payloads_spliced_after_valid_arrays_are_refused_and_leave_no_trace(tmp_path, kind):
    sentinel = tmp_path / "SENTINEL"
    model = small_convnet()
    valid = pickle.dumps(book_like_params(model), protocol=3)
    after_first_array = next(pos for op, _, pos in pickletools.genops(valid) if op.name == "BUILD")
    data = (
        valid[: after_first_array + 1]
        + _payload_ops(sentinel)[kind]
        + valid[after_first_array + 1 :]
    )
    with contextlib.suppress(Exception):  # the rest of the file no longer fits: no matter
        pickle.loads(data)
    assert sentinel.exists(), "the payload must be live, or this test could not fail"
    sentinel.unlink()

    path = tmp_path / "params.pkl"
    path.write_bytes(data)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    expect_error(lambda: import_book_params(path, model), path, "refused to load global")
    assert not sentinel.exists()
    for name, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)


# --- malformed files: property-based tests (the fuzz run is benchmarks/fuzz.py) ----------------

IDX_BASES = [
    np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5),
    np.array([3, 1, 4, 1, 5], dtype=np.uint8),
    np.linspace(-1, 1, 6).astype(np.float32).reshape(3, 2),
    np.arange(-6, 6, dtype=np.int16).reshape(2, 2, 3),
]
IDX_HEADER_EDIT = st.tuples(st.integers(2, 23), st.integers(0, 255))  # dtype, rank, dims


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("reliability-fuzz")


@FUZZ
@pytest.mark.filterwarnings("error")  # one clear error and nothing else
@given(
    base=st.sampled_from(IDX_BASES),
    header_edits=st.lists(IDX_HEADER_EDIT, max_size=3),
    mutations=st.lists(MUTATION, max_size=2),
    gz=st.booleans(),
)
def test_mutated_idx_files_load_as_their_header_says_or_raise_one_value_error(
    fuzz_dir, base, header_edits, mutations, gz
):
    content = bytearray(encode_idx(base))
    for at, value in header_edits:
        if at < len(content):
            content[at] = value
    content = mutate(content, mutations)
    path = fuzz_dir / "mutated-idx"
    path.write_bytes(gzip.compress(bytes(content), mtime=0) if gz else bytes(content))
    try:
        x = datasets.read_idx(path)
    except ValueError as e:
        assert str(path) in str(e)
        return
    code, ndim = content[2], content[3]
    shape = struct.unpack(f">{ndim}I", content[4 : 4 + 4 * ndim])
    assert x.shape == shape and x.dtype == datasets.IDX_DTYPES[code].newbyteorder("=")
    assert x.nbytes == len(content) - 4 - 4 * ndim


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from(["F32", "F16", "F64", "I32", "BOOL", "BF16", "float16", "relu"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
HEADER_EDIT = st.tuples(
    st.sampled_from(["dtype", "shape", "data_offsets", "entry", "config", "metadata"]),
    st.integers(0, 99),
    JSON_VALUES,
)


@pytest.fixture(scope="module")
def model_files(fuzz_dir):
    models = [
        TwoLayerNet(4, 3, 2, rng=0),
        small_convnet(np.float32),
    ]
    raws = []
    for i, model in enumerate(models):
        files.save(model, fuzz_dir / f"model{i}.safetensors")
        raws.append((fuzz_dir / f"model{i}.safetensors").read_bytes())
    return raws


def _edit_header(raw: bytes, edits) -> bytes:
    """Apply structured edits to a safetensors file's JSON header; keep its length field right."""
    end = header_end(raw)
    header = json.loads(raw[8:end])
    meta = header["__metadata__"]
    names = [k for k in header if k != "__metadata__"]
    config = json.loads(meta["config"])
    for field, k, value in edits:
        name = names[k % len(names)]
        if field in ("dtype", "shape", "data_offsets") and isinstance(header.get(name), dict):
            header[name][field] = value
        elif field == "entry":
            header[name] = value
        elif field == "config":
            config[sorted(config)[k % len(config)]] = value
            meta["config"] = json.dumps(config)  # NaN and Infinity included: refused
        else:
            meta[sorted(meta)[k % len(meta)]] = value
    text = json.dumps(header).encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(text)) + text + raw[end:]


@FUZZ
@pytest.mark.filterwarnings("error")
@given(which=st.integers(0, 1), edits=st.lists(HEADER_EDIT, min_size=1, max_size=3))
def test_structured_header_edits_load_or_raise_model_file_error(
    fuzz_dir, model_files, which, edits
):
    path = fuzz_dir / "edited.safetensors"
    path.write_bytes(_edit_header(model_files[which], edits))
    try:
        model = files.load(path)
    except ModelFileError as e:
        assert str(path) in str(e)
        return
    with np.errstate(all="ignore"):
        scores = model.predict(np.ones((2, *model.input_shape)))
    assert scores.shape == (2, model.output_size)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "edits, words",
    [
        # found by benchmarks/fuzz.py: a JSON list as dtype raised TypeError (unhashable)
        ([("dtype", 0, ["F32"])], ["unsupported dtype ['F32']"]),
        # found by benchmarks/fuzz.py: initial weights overflowed with a RuntimeWarning
        ([("config", 4, 1e308)], ["weight_init_std", "too large for float32"]),
        # 21 bytes of config that would allocate 64 MB of weights are refused unallocated
        ([("config", 1, 4096), ("config", 2, 4096)], ["need 16777216 values, more than"]),
    ],
    ids=["list_dtype", "huge_init_std", "huge_layers"],
)
def test_regressions_found_by_the_fuzz_run(fuzz_dir, model_files, edits, words):
    path = fuzz_dir / "regression.safetensors"
    path.write_bytes(_edit_header(model_files[0], edits))
    expect_error(lambda: files.load(path), path, *words)


def test_model_files_with_non_finite_weights_are_refused(tmp_path):
    model = TwoLayerNet(4, 3, 2, rng=0)
    files.save(model, tmp_path / "nan.safetensors")
    tensors, metadata = load_tensors(tmp_path / "nan.safetensors")
    tensors["W2"][1, 0] = np.nan  # written by hand: save refuses NaN weights
    files.save_tensors(tmp_path / "nan.safetensors", tensors, metadata)
    expect_error(lambda: files.load(tmp_path / "nan.safetensors"), "nan", "'W2'", "must be finite")
    model.params["W2"][1, 0] = np.nan
    with pytest.raises(ValueError, match=r"refusing to write .*'W2'\[1\] holds nan"):
        files.save(model, tmp_path / "diverged.safetensors")
    assert not (tmp_path / "diverged.safetensors").exists()


@pytest.fixture(scope="module")
def book_pickles():
    model = small_convnet()
    params = book_like_params(model)
    return model, [pickle.dumps(params, protocol=p) for p in (3, 4)]


PICKLE_EDIT = st.tuples(
    st.sampled_from(["delete", "duplicate", "swap", "opcode", "payload"]),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)


def _edit_opcodes(data: bytes, edits, sentinel: Path) -> bytes:
    payloads = list(_payload_ops(sentinel).values())
    for kind, i, j in edits:
        try:
            starts = [pos for _, _, pos in pickletools.genops(data)]
        except ValueError:  # an earlier edit broke the opcode stream: enough
            break
        pieces = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]
        i, j = i % len(pieces), j % (len(pieces) + 1)
        if kind == "delete":
            del pieces[i]
        elif kind == "duplicate":
            pieces.insert(j, pieces[i])
        elif kind == "swap":
            j %= len(pieces)
            pieces[i], pieces[j] = pieces[j], pieces[i]
        elif kind == "opcode":
            pieces[i] = bytes([j % 256]) + pieces[i][1:]
        else:
            pieces.insert(max(j, 1), payloads[i % len(payloads)])
        data = b"".join(pieces)
    return data


@FUZZ
@pytest.mark.filterwarnings("error")
@given(
    protocol=st.integers(0, 1),
    edits=st.lists(PICKLE_EDIT, min_size=1, max_size=3),
    mutations=st.lists(MUTATION, max_size=2),
)
def test_edited_book_pickles_import_or_raise_and_change_nothing(
    fuzz_dir, book_pickles, protocol, edits, mutations
):
    model, raws = book_pickles
    sentinel = fuzz_dir / "SENTINEL"
    data = mutate(bytearray(_edit_opcodes(raws[protocol], edits, sentinel)), mutations)
    path = fuzz_dir / "edited.pkl"
    path.write_bytes(bytes(data))
    before = {k: v.copy() for k, v in model.params.items()}
    try:
        import_book_params(path, model)
    except ModelFileError as e:
        assert str(path) in str(e)
        for name, value in before.items():
            np.testing.assert_array_equal(model.params[name], value, err_msg=name)
    assert not sentinel.exists()


@pytest.fixture(scope="module")
def checkpoint_file(fuzz_dir):
    trainer = make_trainer(fuzz_dir / "ckpt", epochs=1)
    trainer.train()
    return trainer.checkpoint_path.read_bytes()


def _trainer_state(trainer) -> str:
    arrays = {**trainer.network.state_dict(), **trainer.optimizer.state_dict()}
    parts = [trainer.epoch, trainer.history, trainer.rng.bit_generator.state]
    return repr(parts + [trainer.network.rng_states()]) + repr(
        {k: v.tobytes() for k, v in sorted(arrays.items())}
    )


CHECKPOINT_EDIT = st.tuples(
    st.sampled_from(["epoch", "rng", "model_rngs", "history", "mini_batch_size", "tensor"]),
    st.integers(0, 99),
    JSON_VALUES,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.filterwarnings("error")
@given(edits=st.lists(CHECKPOINT_EDIT, min_size=1, max_size=3))
def test_edited_checkpoints_resume_or_raise_and_change_nothing(fuzz_dir, checkpoint_file, edits):
    path = fuzz_dir / "edited-ckpt.safetensors"
    path.write_bytes(checkpoint_file)
    tensors, meta = load_tensors(path)
    for field, k, value in edits:
        if field == "tensor" and tensors:  # drop one, or give it another shape
            name = sorted(tensors)[k % len(tensors)]
            array = tensors.pop(name)
            if k % 4:
                tensors[name] = array.reshape(-1)[: k % 3]
        elif isinstance(value, str) or field in ("epoch", "mini_batch_size"):
            meta[field] = str(value)
        else:
            meta[field] = json.dumps(value)
    files.save_tensors(path, tensors, meta)
    trainer = make_trainer(epochs=1)
    before = _trainer_state(trainer)
    try:
        trainer.resume(path)
    except ValueError as e:  # ModelFileError, or a checkpoint of another run
        assert str(path) in str(e)
        assert _trainer_state(trainer) == before
        return
    trainer.epochs = trainer.epoch + 1
    trainer.train()


def test_loaders_work_under_a_tight_memory_cap(tmp_path, checkpoint_file):
    """No reader asks for more memory than its file needs (a 1 GiB read buffer did once)."""
    if not HAS_PROC_FD:
        pytest.skip("needs /proc to measure the address space")
    files.save(TwoLayerNet(4, 3, 2, rng=0), tmp_path / "m.safetensors")
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(book_like_params(small_convnet())))
    (tmp_path / "ckpt.safetensors").write_bytes(checkpoint_file)
    datasets.write_idx(tmp_path / "x.idx.gz", np.arange(10, dtype=np.uint8))
    code = f"""
import resource
from pathlib import Path
from scratchdl import datasets, files
from tests.conftest import small_convnet
from tests.conftest import make_trainer
trainer = make_trainer(epochs=1)
vm = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (200 << 20),) * 2)  # 200 MB of headroom
tmp = Path({str(tmp_path)!r})
files.load(tmp / "m.safetensors")
files.import_book_params(tmp / "p.pkl", small_convnet())
trainer.resume(tmp / "ckpt.safetensors")
datasets.read_idx(tmp / "x.idx.gz")
"""
    root = Path(__file__).parents[1]  # the child imports tests.conftest
    argv = [sys.executable, "-c", code]
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- a run killed with SIGKILL resumes bit for bit ------------------------------------------

KILLED_RUN = """
import sys
from pathlib import Path

import numpy as np

from scratchdl import files
from scratchdl.models import MultiLayerNet
from scratchdl.trainer import Trainer

out, epochs = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
t = rng.integers(0, 4, 1200)
x = (rng.standard_normal((4, 16))[t] * 2 + rng.standard_normal((1200, 16))).astype(np.float32)
net = MultiLayerNet(16, [48, 48], 4, use_dropout=True, dropout_ratio=0.2, use_batchnorm=True, rng=1)
trainer = Trainer(
    net, x[:1000], t[:1000], x[1000:], t[1000:], epochs=epochs, mini_batch_size=10,
    optimizer="adam", optimizer_param={"lr": 0.003}, verbose=False,
    checkpoint_path=out / "ckpt.safetensors", rng=2,
)
if (out / "ckpt.safetensors").exists():
    trainer.resume(out / "ckpt.safetensors")
print(trainer.epoch, flush=True)
trainer.train()
files.save(net, out / "model.safetensors")
"""
EPOCHS, KILLS = 14, 3  # each kill costs the run about two epochs


def _start(script: Path, out: Path) -> subprocess.Popen:
    argv = [sys.executable, str(script), str(out), str(EPOCHS)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for ``proc``; return its exit status and the epoch it started after."""
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode, out.split()[0] if out.split() else "?"


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino  # os.replace gives every checkpoint a new inode
    except FileNotFoundError:
        return None


def _wait_for_a_new_checkpoint(proc: subprocess.Popen, path: Path) -> float:
    """Wait until the child has written ``path`` again (or exited); return the seconds taken."""
    old, start = _inode(path), time.monotonic()
    while proc.poll() is None and time.monotonic() - start < 120:
        if _inode(path) not in (old, None):
            break
        time.sleep(0.002)
    return time.monotonic() - start


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_run_killed_at_random_moments_resumes_to_bit_identical_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILLED_RUN)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir()
    killed.mkdir()
    assert _finish(_start(script, straight)) == (0, "0")

    ckpt = killed / "ckpt.safetensors"
    starts, kills = [], 0
    for moment in np.random.default_rng().random(KILLS):
        proc = _start(script, killed)
        _wait_for_a_new_checkpoint(proc, ckpt)  # at least one checkpoint of its own
        epoch_seconds = _wait_for_a_new_checkpoint(proc, ckpt)
        time.sleep(moment * epoch_seconds)  # a random moment of the next epoch
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        code, start = _finish(proc)
        kills += code == -signal.SIGKILL
        starts.append(int(start))
        _, meta = load_tensors(ckpt)  # after every kill the checkpoint is whole
        assert int(meta["epoch"]) >= 1
    code, start = _finish(_start(script, killed))
    starts.append(int(start))

    assert code == 0 and kills >= 2, (code, kills)
    assert starts[0] == 0 and 0 < starts[-1] < EPOCHS, starts  # the last run resumed midway
    assert starts == sorted(starts)
    a, _ = load_tensors(straight / "model.safetensors")
    b, _ = load_tensors(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name
    assert not list(killed.glob(".*.tmp"))  # temp files of killed writes are cleared on resume


# --- divergence, through the command line -------------------------------------------------

SMALL_RUN = ("train", "--model", "two-layer", "--batch-size", "50", "--eval-samples", "100")


def test_divergence_from_the_start_exits_2_with_one_line(tmp_path, capsys, slice_data):
    out = tmp_path / "run"
    argv = (*SMALL_RUN, "--optimizer", "sgd", "--lr", "1e30", "--epochs", "2", "--out", str(out))
    code, _, err = run(capsys, *argv, "--quiet")  # no progress bar on stderr
    assert_one_line_error(code, err, "iteration", "smaller learning rate", "1e+30")
    assert not (out / "model.safetensors").exists()
    assert not (out / "checkpoint.safetensors").exists()  # it diverged before epoch 1 ended


def test_divergence_after_a_checkpoint_exits_2_and_keeps_it(tmp_path, capsys, slice_data):
    out = tmp_path / "run"
    code, _, err = run(capsys, *SMALL_RUN, "--epochs", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    ckpt = out / "checkpoint.safetensors"
    good, model = ckpt.read_bytes(), (out / "model.safetensors").read_bytes()

    code, _, err = run(
        capsys,
        *SMALL_RUN,
        "--epochs",
        "3",
        "--out",
        str(out),
        "--resume",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",  # --resume --lr overrides the checkpoint's rate
        "--quiet",
    )
    assert_one_line_error(
        code, err, "smaller learning rate", f"checkpoint {ckpt} still holds the state after epoch 1"
    )
    assert "good" not in err  # it may be the resumed file that diverged
    iteration = int(re.search(r"at iteration (\d+)", err).group(1))
    assert iteration > 2000 // 50  # counted on from the first epoch's 40 iterations
    assert ckpt.read_bytes() == good
    assert (out / "model.safetensors").read_bytes() == model


# --- a damaged checkpoint: the digest refuses it --------------------------------------------


def _overwrite_tensor(path: Path, name: str, value: bytes, at: int = 0) -> None:
    raw = bytearray(path.read_bytes())
    end = 8 + struct.unpack("<Q", raw[:8])[0]
    begin = end + json.loads(raw[8:end])[name]["data_offsets"][0] + at
    raw[begin : begin + len(value)] = value
    path.write_bytes(raw)


@pytest.mark.parametrize(
    "name, value, at",
    [
        ("optimizer/lr", struct.pack("<d", 1e6), 0),  # once trained on to 0.11 with exit 0
        ("model/W1", struct.pack("<f", 3e38) * 4, 8),  # huge weights: once "the last good" one
    ],
)
def test_a_damaged_checkpoint_is_refused_on_resume_with_one_line(
    tmp_path, capsys, slice_data, name, value, at
):
    out = tmp_path / "run"
    code, _, err = run(capsys, *SMALL_RUN, "--epochs", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    ckpt = out / "checkpoint.safetensors"
    _overwrite_tensor(ckpt, name, value, at)
    damaged = ckpt.read_bytes()
    argv = (*SMALL_RUN, "--epochs", "2", "--out", str(out), "--resume", "--quiet")
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, str(ckpt), "damaged", "sha256")
    assert ckpt.read_bytes() == damaged  # nothing trained on, nothing overwritten


def test_a_checkpoint_written_before_digests_still_resumes(tmp_path, checkpoint_file):
    import safetensors.numpy

    path = tmp_path / "old.safetensors"
    path.write_bytes(checkpoint_file)
    tensors, meta = load_tensors(path)
    safetensors.numpy.save_file(tensors, path, metadata=meta)  # as written before digests
    assert "sha256" not in path.read_bytes()[:4096].decode("latin-1")
    trainer = make_trainer(epochs=2)
    trainer.resume(path)
    assert trainer.epoch == 1


# --- a full disk ------------------------------------------------------------------------------


def _disk_full_for(monkeypatch, is_target) -> None:
    """Make os.fsync fail with ENOSPC for the files whose path ``is_target`` accepts."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if is_target(Path(os.readlink(f"/proc/self/fd/{fd}"))):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


needs_proc_fd = pytest.mark.skipif(not HAS_PROC_FD, reason="needs /proc/self/fd")


@needs_proc_fd
def test_a_full_disk_fails_before_training_starts(tmp_path, capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr(cli, "load_dataset", lambda name, data_dir=None: loaded.append(name))
    _disk_full_for(monkeypatch, lambda p: p.name.startswith(".write-test-"))
    code, stdout, err = run(capsys, "train", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "--out", str(tmp_path / "run"), "No space left on device")
    assert loaded == [] and "epoch" not in stdout


@needs_proc_fd
def test_a_full_disk_mid_run_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.train()
    ckpt = tmp_path / "ckpt.safetensors"
    good = ckpt.read_bytes()
    trainer.epochs = 2
    _disk_full_for(monkeypatch, lambda p: p.name.startswith(".ckpt.safetensors."))
    with pytest.raises(OSError) as info:
        trainer.train()
    assert info.value.errno == errno.ENOSPC
    for words in (str(ckpt), "after epoch 2", "No space left on device", "previous one is intact"):
        assert words in str(info.value), str(info.value)
    monkeypatch.undo()
    assert ckpt.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]  # no temp file
    resumed = make_trainer(tmp_path, epochs=2)
    resumed.resume(ckpt)
    assert resumed.epoch == 1


@needs_proc_fd
def test_a_full_disk_mid_run_through_the_cli_exits_2(tmp_path, capsys, slice_data, monkeypatch):
    out = tmp_path / "run"
    ckpt = out / "checkpoint.safetensors"
    _disk_full_for(
        monkeypatch, lambda p: p.name.startswith(".checkpoint.safetensors.") and ckpt.exists()
    )
    code, _, err = run(capsys, *SMALL_RUN, "--epochs", "2", "--out", str(out), "--quiet")
    assert_one_line_error(code, err, str(ckpt), "No space left on device", "intact")
    monkeypatch.undo()
    assert load_tensors(ckpt)[1]["epoch"] == "1"
    assert not list(out.glob(".*.tmp"))


# --- determinism --------------------------------------------------------------------------


def test_the_same_seed_gives_byte_identical_models_through_the_cli(tmp_path, capsys, slice_data):
    def train(seed: int, name: str) -> dict[str, bytes]:
        out = tmp_path / name
        argv = (*SMALL_RUN, "--epochs", "1", "--augment", "--seed", str(seed), "--out", str(out))
        code, _, err = run(capsys, *argv, "--quiet")
        assert code == 0, err
        tensors, _ = load_tensors(out / "model.safetensors")
        return {k: v.tobytes() for k, v in tensors.items()}

    first, again, other = train(7, "a"), train(7, "b"), train(8, "c")
    assert first == again
    assert first != other  # the seed matters, so the equality above could have failed


def test_trainer_refuses_non_finite_data_before_training():
    x, t = blobs(40)
    x[17, 3] = np.inf
    net = TwoLayerNet(8, 4, 3, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"x_train\[17\] holds inf"):
            Trainer(net, x, t, x[:5] * 0, t[:5], verbose=False)


# --- divergence on an epoch's last step ----------------------------------------------------

ONE_STEP_RUN = (  # the slice's 2000 images in one batch: every epoch is a single step
    "train",
    "--model",
    "two-layer",
    "--batch-size",
    "2000",
    "--eval-samples",
    "100",
    "--quiet",
)


def test_divergence_on_an_epochs_last_step_exits_2_and_the_run_resumes(
    tmp_path, capsys, slice_data
):
    out = tmp_path / "run"
    ckpt, model = out / "checkpoint.safetensors", out / "model.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's overflow warnings fail the test
        argv = (*ONE_STEP_RUN, "--lr", "1e300", "--epochs", "1", "--out", str(out))
        code, stdout, err = run(capsys, *argv)
        assert_one_line_error(code, err, "weights became", "iteration 1 (epoch 1)", "1e+300")
        assert "final test accuracy" not in stdout
        assert not ckpt.exists() and not model.exists()

        code, _, err = run(capsys, *ONE_STEP_RUN, "--epochs", "1", "--out", str(out))
        assert code == 0, err
        good, good_model = ckpt.read_bytes(), model.read_bytes()
        argv = (*ONE_STEP_RUN, "--epochs", "3", "--resume", "--lr", "1e300", "--out", str(out))
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, "weights became", "(epoch 2)", f"checkpoint {ckpt} still")
        assert ckpt.read_bytes() == good and model.read_bytes() == good_model

        argv = (*ONE_STEP_RUN, "--epochs", "3", "--resume", "--lr", "0.1", "--out", str(out))
        code, _, err = run(capsys, *argv)  # from the good checkpoint
        assert code == 0, err
    assert all(np.isfinite(v).all() for v in files.load(model).params.values())
    assert len(json.loads((out / "history.json").read_text())["test_acc"]) == 3


# --- a full disk after training -------------------------------------------------------------


@needs_proc_fd
def test_a_full_disk_after_training_names_the_file_and_the_way_back(
    tmp_path, capsys, slice_data, monkeypatch
):
    out = tmp_path / "run"
    model, ckpt = out / "model.safetensors", out / "checkpoint.safetensors"
    full = [True]
    _disk_full_for(monkeypatch, lambda p: full[0] and p.name.startswith(".model.safetensors."))
    argv = (*SMALL_RUN, "--epochs", "2", "--out", str(out), "--quiet")
    code, _, err = run(capsys, *argv)
    assert_one_line_error(
        code,
        err,
        f"cannot write {model}",
        "No space left on device",
        f"safe in {ckpt} (epoch 2)",
        "free some space",
        "--resume",
    )
    assert not model.exists() and not list(out.glob(".*.tmp"))
    full[0] = False
    steps = []
    real_step = Trainer.train_step
    monkeypatch.setattr(
        Trainer, "train_step", lambda self, x, t: steps.append(1) or real_step(self, x, t)
    )
    code, stdout, err = run(capsys, *argv, "--resume")  # the same command, with --resume
    assert code == 0, err
    assert steps == [] and "final test accuracy" in stdout  # written, not trained again
    weights, _ = load_tensors(ckpt)
    for name, array in files.load(model).state_dict().items():
        np.testing.assert_array_equal(array, weights[f"model/{name}"])
    code, _, err = run(capsys, *argv, "--resume")  # now all is written: nothing left to do
    assert_one_line_error(code, err, "at epoch 2", "--epochs larger than 2")


# --- two runs into one folder -------------------------------------------------------------

CLI_ON_THE_SLICE = """
import sys

from scratchdl import cli
from tests.conftest import mnist_slice

data = mnist_slice()
cli.load_dataset = lambda name, data_dir=None: data
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_second_run_into_the_same_out_is_refused_until_the_first_dies(
    tmp_path, capsys, slice_data
):
    out = tmp_path / "run"
    ckpt = out / "checkpoint.safetensors"
    argv = [
        sys.executable,
        "-c",
        CLI_ON_THE_SLICE,
        *SMALL_RUN,
        "--epochs",
        "1000",
        "--out",
        str(out),
    ]
    root = Path(__file__).parents[1]  # the child imports tests.conftest
    first = subprocess.Popen(argv + ["--quiet"], cwd=root, stdout=subprocess.DEVNULL)
    try:
        _wait_for_a_new_checkpoint(first, ckpt)
        assert first.poll() is None, "the first run ended too soon"
        writing = out / ".checkpoint.safetensors.x1y2.tmp"  # as if the first were writing it
        writing.write_bytes(b"half a checkpoint")
        code, _, err = run(capsys, *SMALL_RUN, "--epochs", "1", "--out", str(out), "--quiet")
        assert_one_line_error(code, err, "--out", str(out), "in use", f"process {first.pid}")
        assert writing.exists()
    finally:
        first.kill()  # SIGKILL: the operating system releases its lock
        first.wait(timeout=60)
    saving = out / ".model.safetensors.k9z8.tmp"  # a run killed while it saved the model
    saving.write_bytes(b"half a model")
    code, _, err = run(capsys, *SMALL_RUN, "--epochs", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    assert not writing.exists() and not saving.exists()
    assert not list(out.glob(".*"))  # no temporary or lock file is left
