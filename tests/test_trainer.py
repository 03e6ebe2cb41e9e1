"""Trainer: epochs, history, divergence, checkpoints and bit-identical resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchdl.augment import Augmenter
from scratchdl.models import TwoLayerNet
from scratchdl.optimizers import SGD
from scratchdl.trainer import Trainer, TrainingDiverged
from tests.conftest import blobs, make_trainer


def test_training_improves_accuracy_and_records_history():
    trainer = make_trainer(epochs=4)
    before = trainer.network.accuracy(trainer.x_test, trainer.t_test)
    history = trainer.train()
    assert len(history["loss"]) == 4 * 8  # ceil(240 / 32) = 8 iterations per epoch
    assert len(history["train_acc"]) == len(history["test_acc"]) == 4
    assert history["test_acc"][-1] > max(before, 0.9)
    assert np.mean(history["loss"][-8:]) < np.mean(history["loss"][:8])


def test_each_epoch_is_a_pass_without_replacement():
    trainer = make_trainer(epochs=2)
    seen: list[list[tuple]] = [[], []]
    step = trainer.train_step

    def spy(x_batch, t_batch):  # the batches train() hands to a step
        seen[trainer.epoch].extend(map(tuple, x_batch))
        return step(x_batch, t_batch)

    trainer.train_step = spy
    trainer.train()
    every_sample = sorted(map(tuple, trainer.x_train))
    assert sorted(seen[0]) == every_sample and sorted(seen[1]) == every_sample
    assert seen[0] != seen[1]  # each epoch draws its own order


def test_history_is_saved_as_json(tmp_path):
    trainer = make_trainer(epochs=1)
    trainer.train()
    trainer.save_history(tmp_path / "history.json")
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["loss"] == trainer.history["loss"]


def test_optimizer_by_object_or_name_and_unknown_name():
    x, t = blobs(20)
    net = TwoLayerNet(8, 4, 3, rng=0)
    assert isinstance(Trainer(net, x, t, x, t, optimizer=SGD(0.1)).optimizer, SGD)
    with pytest.raises(ValueError, match="adam"):
        Trainer(net, x, t, x, t, optimizer="adamw")


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3)
    trainer.epochs = 1
    trainer.train()
    good = (tmp_path / "ckpt.safetensors").read_bytes()
    trainer.epochs = 3
    trainer.optimizer.lr = 1e30  # diverges within a few iterations
    with pytest.raises(TrainingDiverged, match=r"iteration \d+.*smaller learning rate"):
        trainer.train()
    assert (tmp_path / "ckpt.safetensors").read_bytes() == good


def crash_in_epoch_3(trainer):
    """Train ``trainer`` until a KeyboardInterrupt in its third epoch (8 iterations each)."""
    calls = 0
    original = trainer.train_step

    def step(x, t):
        nonlocal calls
        calls += 1
        if calls == 2 * 8 + 3:
            raise KeyboardInterrupt
        return original(x, t)

    trainer.train_step = step
    with pytest.raises(KeyboardInterrupt):
        trainer.train()


def assert_same_run(a, b):
    for name, p in a.network.params.items():
        np.testing.assert_array_equal(p, b.network.params[name], err_msg=name)
    for name, buffer in a.network.buffers.items():
        np.testing.assert_array_equal(buffer, b.network.buffers[name], err_msg=name)
    assert a.history["loss"] == b.history["loss"]


def test_resume_after_interruption_is_bit_identical(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=3, seed=5, augment=False)
    straight.train()
    crash_in_epoch_3(make_trainer(tmp_path / "b", epochs=3, seed=5))
    resumed = make_trainer(tmp_path / "b", epochs=3, seed=123)  # a different seed: all restored
    resumed.resume(tmp_path / "b" / "ckpt.safetensors")
    assert resumed.epoch == 2
    resumed.train()
    assert_same_run(straight, resumed)


def augmenter(seed):
    """An Augmenter for the blobs, seen as 1x2x4 images."""
    return Augmenter(max_shift=1.0, max_rotation=20.0, image_shape=(1, 2, 4), rng=seed)


def test_an_augmenter_draws_from_its_own_generator():
    a, b, c = (make_trainer(epochs=1, seed=0, augment=augmenter(s)) for s in (5, 6, 5))
    for trainer in (a, b, c):
        trainer.train()
    assert a.history["loss"] != b.history["loss"]  # the trainer's rng is the same: seed 5 vs 6
    assert a.history["loss"] == c.history["loss"]
    assert a.rng.bit_generator.state == b.rng.bit_generator.state  # it only shuffled
    trainer = make_trainer(augment=True)
    assert trainer.augmenter.rng is trainer.rng  # augment=True draws from the trainer's rng


def test_resume_with_an_augmenter_of_its_own_is_bit_identical(tmp_path):
    straight = make_trainer(tmp_path / "a", epochs=3, seed=5, augment=augmenter(5))
    straight.train()
    crash_in_epoch_3(make_trainer(tmp_path / "b", epochs=3, seed=5, augment=augmenter(5)))
    resumed = make_trainer(tmp_path / "b", epochs=3, seed=123, augment=augmenter(7))
    resumed.resume(tmp_path / "b" / "ckpt.safetensors")  # restores the Augmenter's rng too
    resumed.train()
    assert_same_run(straight, resumed)


def sharing_trainer(tmp_path=None):
    """A trainer whose Augmenter draws from the trainer's rng, as augment=True does."""
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.augmenter = augmenter(trainer.rng)
    return trainer


def test_resume_refuses_a_run_that_augments_from_another_generator(tmp_path):
    make_trainer(tmp_path / "own", epochs=1, augment=augmenter(5)).train()
    sharing_trainer(tmp_path / "shared").train()
    for saved, make in (
        ("own", sharing_trainer),
        ("own", lambda: make_trainer(epochs=1)),
        ("shared", lambda: make_trainer(epochs=1, augment=augmenter(5))),
    ):
        trainer = make()
        with pytest.raises(ValueError, match="Augmenter that has a generator of its own"):
            trainer.resume(tmp_path / saved / "ckpt.safetensors")
        assert trainer.epoch == 0


def test_resume_refuses_a_different_run(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.train()
    x, t = blobs()
    other = Trainer(TwoLayerNet(8, 5, 3, rng=0), x, t, x, t, optimizer="adam", verbose=False)
    with pytest.raises(ValueError, match="class"):
        other.resume(tmp_path / "ckpt.safetensors")


def test_same_seed_gives_bit_identical_training():
    a, b = make_trainer(epochs=2, seed=3, augment=False), make_trainer(epochs=2, seed=3)
    a.train()
    b.train()
    for name in a.network.params:
        np.testing.assert_array_equal(a.network.params[name], b.network.params[name])


def test_bad_arguments():
    x, t = blobs(20)
    net = TwoLayerNet(8, 4, 3, rng=0)
    with pytest.raises(ValueError, match="same length"):
        Trainer(net, x, t[:10], x, t)
    with pytest.raises(ValueError, match="epochs"):
        Trainer(net, x, t, x, t, epochs=0)
    with pytest.raises(ValueError, match="mini_batch_size"):
        Trainer(net, x, t, x, t, mini_batch_size=-5)


def test_trainer_on_a_real_mnist_slice_improves_accuracy():
    from tests.conftest import mnist_slice

    (x, t), (xt, tt) = mnist_slice(flatten=True)
    net = TwoLayerNet(784, 50, 10, rng=0)
    trainer = Trainer(
        net,
        x,
        t,
        xt,
        tt,
        epochs=4,
        mini_batch_size=20,
        optimizer="sgd",
        optimizer_param={"lr": 0.2},
        verbose=False,
        rng=0,
    )
    before = net.accuracy(xt, tt)
    history = trainer.train()
    assert before < 0.2
    assert history["test_acc"][-1] > 0.8  # 400 steps on 2000 images (full data: 97 %)
    assert history["test_acc"][-1] > history["test_acc"][0]


def test_trainer_with_augmentation_on_images():
    from scratchdl.models import SimpleConvNet
    from tests.conftest import mnist_slice

    (x, t), (xt, tt) = mnist_slice()
    net = SimpleConvNet(
        conv_param={"filter_num": 8, "filter_size": 5, "pad": 0, "stride": 1}, hidden_size=32, rng=0
    )
    trainer = Trainer(
        net,
        x[:1000],
        t[:1000],
        xt[:300],
        tt[:300],
        epochs=3,
        mini_batch_size=20,
        optimizer="adam",
        optimizer_param={"lr": 0.003},
        verbose=False,
        augment=True,
        rng=0,
    )
    history = trainer.train()
    assert history["test_acc"][-1] > 0.7


def test_step_decay_of_the_learning_rate_and_resume(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3, lr_decay_epochs=(2, 3), lr_decay=0.5)
    trainer.epochs = 2
    trainer.train()
    assert trainer.optimizer.lr == pytest.approx(0.01 * 0.5)
    resumed = make_trainer(tmp_path, epochs=3, lr_decay_epochs=(2, 3), lr_decay=0.5)
    resumed.resume(tmp_path / "ckpt.safetensors")
    resumed.train()  # the checkpoint's rate, decayed once more at epoch 3
    assert resumed.optimizer.lr == pytest.approx(0.01 * 0.25)
    with pytest.raises(ValueError, match="lr_decay"):
        make_trainer(lr_decay=0)
    with pytest.raises(ValueError, match="lr_decay_epochs"):
        make_trainer(lr_decay_epochs=(0,))


# --- divergence on an epoch's last step, settings of a resumed run, long histories -----------


def one_step_trainer(tmp_path, epochs=1, lr=0.1, **kwargs):
    """A TwoLayerNet on the blobs with one batch per epoch: each epoch is one SGD step."""
    x, t = blobs()
    return Trainer(
        TwoLayerNet(8, 16, 3, rng=0),
        x[:240],
        t[:240],
        x[240:],
        t[240:],
        epochs=epochs,
        mini_batch_size=240,
        optimizer=SGD(lr),
        verbose=False,
        checkpoint_path=tmp_path / "ckpt.safetensors",
        rng=0,
        **kwargs,
    )


@pytest.mark.parametrize(
    "lr, words",
    [(1e300, "weights became"), (1e30, "scores became")],  # 1e30: finite weights, inf scores
)
def test_a_divergence_on_the_last_step_of_an_epoch_stops_before_the_checkpoint(tmp_path, lr, words):
    import warnings

    trainer = one_step_trainer(tmp_path)
    trainer.train()
    ckpt = tmp_path / "ckpt.safetensors"
    good = ckpt.read_bytes()
    trainer.epochs, trainer.optimizer.lr = 2, lr  # the loss of the step is still finite
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and nothing prints a RuntimeWarning
        with pytest.raises(TrainingDiverged) as info:
            trainer.train()
    message = str(info.value)
    assert words in message and "iteration 2 (epoch 2)" in message, message
    assert f"checkpoint {ckpt} still holds the state after epoch 1" in message
    assert "smaller learning rate" in message
    assert ckpt.read_bytes() == good and trainer.epoch == 1
    if lr == 1e300:
        with pytest.raises(ValueError, match=r"refusing to write .*holds (nan|inf)"):
            trainer.save_checkpoint(tmp_path / "nan.safetensors")  # nor by hand
        assert not (tmp_path / "nan.safetensors").exists()

    resumed = one_step_trainer(tmp_path, epochs=2)
    resumed.resume(ckpt)
    resumed.train()  # from the good checkpoint, at the usual rate
    assert resumed.epoch == 2
    assert all(np.isfinite(p).all() for p in resumed.network.params.values())


def test_resume_refuses_other_settings_naming_each_one(tmp_path):
    settings = {"dataset": "mnist", "seed": 0, "augment": False}
    one_step_trainer(tmp_path, settings=settings).train()
    ckpt = tmp_path / "ckpt.safetensors"

    other = one_step_trainer(tmp_path, settings={**settings, "dataset": "fashion", "seed": 1})
    with pytest.raises(ValueError) as info:
        other.resume(ckpt)
    message = str(info.value)
    assert "dataset 'mnist' (this run: 'fashion')" in message, message
    assert "seed 0 (this run: 1)" in message and "augment" not in message
    assert other.epoch == 0

    x, t = blobs()  # the trainer's own settings, each named
    other = Trainer(
        TwoLayerNet(8, 16, 3, rng=0),
        x,
        t,
        x,
        t,
        mini_batch_size=60,
        optimizer=SGD(0.1),
        lr_decay_epochs=(2,),
        verbose=False,
        settings=settings,
    )
    with pytest.raises(ValueError) as info:
        other.resume(ckpt)
    message = str(info.value)
    assert "mini_batch_size 240 (this run: 60)" in message, message
    assert "lr_decay_epochs [] (this run: [2])" in message
    assert other.epoch == 0

    same = one_step_trainer(tmp_path, epochs=3, settings=dict(reversed(settings.items())))
    assert same.resume(ckpt) == 1  # the epochs the saved run was set to train
    assert same.epoch == 1
    with pytest.raises(ValueError, match="settings must be a JSON-able dict"):
        one_step_trainer(tmp_path, settings={"seed": object()})


def test_a_history_of_millions_of_losses_is_saved_as_a_tensor_and_resumes(tmp_path):
    from scratchdl.files import load_tensors

    trainer = make_trainer(tmp_path, epochs=2)
    trainer.epochs = 1
    trainer.train()
    # 6 million iterations: epoch 100 at batch size 1; as JSON the header would pass 100 MB
    losses = np.random.default_rng(0).random(6_000_000).tolist()
    trainer.history["loss"] = losses + trainer.history["loss"]
    ckpt = tmp_path / "ckpt.safetensors"
    trainer.save_checkpoint(ckpt)
    with open(ckpt, "rb") as f:
        assert int.from_bytes(f.read(8), "little") < 100_000  # the header stays small
    tensors, _ = load_tensors(ckpt)
    assert tensors["history/loss"].dtype == np.float64
    resumed = make_trainer(tmp_path, epochs=2)
    resumed.resume(ckpt)
    assert resumed.history["loss"] == trainer.history["loss"]  # bit for bit
    resumed.train()
    assert len(resumed.history["loss"]) == len(trainer.history["loss"]) + 8


def test_a_checkpoint_of_format_version_1_resumes(tmp_path):
    import json

    from scratchdl.files import load_tensors, save_tensors

    straight = make_trainer(tmp_path / "a", epochs=2, seed=5)
    straight.train()
    trainer = make_trainer(tmp_path / "b", epochs=2, seed=5)
    trainer.epochs = 1
    trainer.train()
    ckpt = tmp_path / "b" / "ckpt.safetensors"
    tensors, meta = load_tensors(ckpt)  # as the version before 2 wrote it
    history = json.loads(meta["history"])
    history["loss"] = tensors.pop("history/loss").tolist()
    meta["history"] = json.dumps(history)
    for key in ("format_version", "lr_decay_epochs", "lr_decay", "settings"):
        del meta[key]
    save_tensors(ckpt, tensors, meta)
    resumed = make_trainer(tmp_path / "b", epochs=2, seed=5)
    resumed.resume(ckpt)
    resumed.train()
    assert_same_run(straight, resumed)


def test_a_checkpoint_held_by_another_run_is_left_alone(tmp_path):
    from scratchdl.support.atomic import FolderLocked, lock_file

    ckpt = tmp_path / "ckpt.safetensors"
    temp = tmp_path / ".ckpt.safetensors.x1y2.tmp"  # being written by the other run
    temp.write_bytes(b"half a checkpoint")
    trainer = make_trainer(tmp_path, epochs=1)
    with lock_file(ckpt), pytest.raises(FolderLocked, match=str(ckpt)):
        trainer.train()
    assert temp.exists() and trainer.epoch == 0
    trainer.train()  # the other run has ended: its temporary file is stale now
    assert not temp.exists() and sorted(p.name for p in tmp_path.iterdir()) == [ckpt.name]


def test_a_checkpoint_with_values_beyond_the_models_dtype_is_refused(tmp_path):
    from scratchdl.files import ModelFileError, load_tensors, save_tensors

    trainer = make_trainer(tmp_path, epochs=1)
    trainer.train()
    ckpt = tmp_path / "ckpt.safetensors"
    tensors, meta = load_tensors(ckpt)
    tensors["model/W1"] = tensors["model/W1"].astype(np.float64)
    tensors["model/W1"][0, 0] = 1e300  # finite as float64, infinite in the float32 model
    save_tensors(ckpt, tensors, meta)
    resumed = make_trainer(tmp_path, epochs=2)
    before = resumed.network.params["W1"].copy()
    with pytest.raises(ModelFileError, match=r"model/W1 holds values beyond the range of float32"):
        resumed.resume(ckpt)
    np.testing.assert_array_equal(resumed.network.params["W1"], before)
    assert resumed.epoch == 0
