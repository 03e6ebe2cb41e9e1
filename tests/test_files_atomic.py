"""Writing files atomically: a failed write leaves the old file and no temporary file, the file
and its folder are fsync'ed, and a locked run folder is refused until its holder dies."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from scratchdl.files import load, save
from scratchdl.models import TwoLayerNet


@pytest.mark.parametrize("failing", ["replace", "fsync", "header"])
def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "model.safetensors"
    save(TwoLayerNet(4, 3, 2, rng=0), path)
    old = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk on fire")

    if failing == "header":  # the bytes cannot be made: a header no reader would accept
        from scratchdl.files import safetensors_file

        monkeypatch.setattr(safetensors_file, "MAX_HEADER_BYTES", 64)
        error, match = ValueError, "more than the 64 a reader accepts"
    else:
        monkeypatch.setattr(os, failing, boom)
        error, match = OSError, "disk on fire"
    with pytest.raises(error, match=match):
        save(TwoLayerNet(4, 3, 2, rng=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["model.safetensors"]
    load(path)  # still a valid model file


def test_the_file_and_its_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}") if sys.platform == "linux" else None)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    save(TwoLayerNet(4, 3, 2, rng=0), tmp_path / "model.safetensors")
    assert len(synced) == 2  # the temporary file, then the folder that now names it
    if sys.platform == "linux":
        assert synced == [False, True]


def test_a_successful_write_replaces_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save(TwoLayerNet(4, 3, 2, rng=0), path)
    other = TwoLayerNet(4, 3, 2, rng=1)
    save(other, path)
    np.testing.assert_array_equal(load(path).params["W1"], other.params["W1"])
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_a_locked_folder_is_refused_until_its_holder_dies(tmp_path):
    import signal

    from scratchdl.support.atomic import FolderLocked, lock_folder

    out = tmp_path / "run"
    code = (
        "import sys, time; from scratchdl.support.atomic import lock_folder; "
        "lock = lock_folder(sys.argv[1]); lock.__enter__(); print('locked', flush=True); "
        "time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLocked, match=rf"{out} is in use .*process {holder.pid}"):
            with lock_folder(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # the operating system lets go of its lock
        holder.wait(timeout=60)
        holder.stdout.close()
    with lock_folder(out):
        with pytest.raises(FolderLocked):  # one holder, even in the same process
            with lock_folder(out):
                pass
        assert (out / ".lock").read_text().strip() == str(os.getpid())
    assert list(out.iterdir()) == []  # the lock file goes with the lock
