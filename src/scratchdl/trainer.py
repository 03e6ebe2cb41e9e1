"""The training loop (the book's ``Trainer``, ch6-8), with history, checkpoints and resume.

Differences from the book's class, each on purpose:
- an epoch is one shuffled pass over the training set without replacement (the book draws
  every mini-batch with replacement), and evaluation happens after each full epoch;
- the loss of every iteration and the accuracies of every epoch are kept in ``history``
  and can be saved as JSON;
- a non-finite loss, or weights that an epoch's last step made non-finite, stop training
  with ``TrainingDiverged`` instead of going on (or saving) with NaNs;
- with ``checkpoint_path`` the full state (weights, optimizer, random generators, history)
  is written atomically after every epoch, under a lock that keeps a second run off it, and
  ``resume`` continues a run bit for bit, once it has checked that the run is the same one.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from .augment import Augmenter, as_augmenter
from .files.checkpoint import HISTORY_KEYS, read_checkpoint, write_checkpoint
from .files.safetensors_file import ModelFileError
from .models import Sequential
from .optimizers import Optimizer, get_optimizer
from .support.atomic import atomic_write, check_writable, lock_file, stale_temp_files
from .support.checks import as_rng, check_finite, check_fraction, check_path, check_positive_int
from .support.checks import short_repr as _short

PROBE_SAMPLES = 100  # test samples whose scores must be finite after every epoch


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; training stopped.

    The network keeps the diverged weights; the checkpoint, if any, is left as the last
    completed epoch wrote it (or as it was resumed from).
    """


class Trainer:
    """Train ``network`` with mini-batches and evaluate it after every epoch.

    ``optimizer`` is an optimizer object or a name ('sgd', 'momentum', 'nesterov',
    'adagrad', 'rmsprop', 'adam') built with ``optimizer_param`` (the book's interface).
    ``evaluate_sample_num_per_epoch`` limits the accuracy evaluation to the first that many
    samples of each set (None: all). ``augment`` is True (MNIST defaults, drawing from the
    trainer's ``rng``), False or an ``Augmenter`` (drawing from its own ``rng``); it transforms
    each training batch before the forward pass.
    ``lr_decay_epochs`` (step decay, not in the book): the optimizer's learning rate is
    multiplied by ``lr_decay`` at the start of each of those epochs (1-based), e.g.
    ``lr_decay_epochs=(15,)`` trains the last epochs of 20 at a tenth of the rate. The rate
    is saved in checkpoints, so a resumed run continues the schedule.
    ``settings`` (JSON-able, e.g. ``{"dataset": "mnist", "seed": 0}``): what else the caller
    chose for this run; checkpoints record it, and ``resume`` refuses a checkpoint whose
    settings differ, naming each one, as it does for the model, optimizer type, batch size and
    learning-rate schedule.

    Shape: x_train (N, ...) as the network expects; t_train (N,) labels or (N, K) one-hot.
    """

    def __init__(
        self,
        network,
        x_train: np.ndarray,
        t_train: np.ndarray,
        x_test: np.ndarray,
        t_test: np.ndarray,
        epochs: int = 20,
        mini_batch_size: int = 100,
        optimizer: str | Optimizer = "SGD",
        optimizer_param: dict | None = None,
        evaluate_sample_num_per_epoch: int | None = None,
        verbose: bool = True,
        *,
        augment: bool | Augmenter = False,
        checkpoint_path: str | os.PathLike | None = None,
        rng=None,
        lr_decay_epochs: tuple[int, ...] = (),
        lr_decay: float = 0.1,
        settings: dict | None = None,
    ) -> None:
        if not all(callable(getattr(network, a, None)) for a in ("gradient", "accuracy")):
            raise ValueError(
                f"network must be a model with gradient(x, t) and accuracy(x, t), such as "
                f"MultiLayerNet, got {_short(network)}"
            )
        data = {"x_train": x_train, "t_train": t_train, "x_test": x_test, "t_test": t_test}
        for name, value in data.items():
            data[name] = np.asarray(value)
            if data[name].ndim == 0:
                raise ValueError(f"{name} must be an array of samples, got {_short(value)}")
        x_train, t_train, x_test, t_test = data.values()
        if len(x_train) != len(t_train) or len(x_test) != len(t_test):
            raise ValueError(
                f"x and t must have the same length, got x_train {len(x_train)}, t_train "
                f"{len(t_train)}, x_test {len(x_test)}, t_test {len(t_test)}"
            )
        if len(x_train) == 0:
            raise ValueError(f"the training set is empty: x_train has shape {x_train.shape}")
        if len(x_test) == 0:
            raise ValueError(
                f"the test set is empty (x_test has shape {x_test.shape}); each epoch ends "
                "with an evaluation on it"
            )
        for split, x, t in (("train", x_train, t_train), ("test", x_test, t_test)):
            _check_samples(network, split, x, t)
        if optimizer_param is not None and not isinstance(optimizer_param, dict):
            raise ValueError(f"optimizer_param must be a dict, got {_short(optimizer_param)}")
        if not isinstance(verbose, (bool, np.bool_)):
            raise ValueError(f"verbose must be True or False, got {verbose!r}")
        self.network = network
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = check_positive_int("epochs", epochs)
        self.batch_size = check_positive_int("mini_batch_size", mini_batch_size)
        if isinstance(optimizer, Optimizer):
            if optimizer_param:
                raise ValueError("optimizer_param is only used with an optimizer name")
            self.optimizer = optimizer
        else:
            self.optimizer = get_optimizer(optimizer, **(optimizer_param or {}))
        if evaluate_sample_num_per_epoch is not None:
            check_positive_int("evaluate_sample_num_per_epoch", evaluate_sample_num_per_epoch)
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.verbose = verbose
        self.rng = as_rng(rng)  # shuffling (and augment=True's augmentation) draw from this
        self.augmenter = as_augmenter(augment, rng=self.rng)
        if isinstance(lr_decay_epochs, int):
            lr_decay_epochs = (lr_decay_epochs,)
        self.lr_decay_epochs = tuple(
            check_positive_int("lr_decay_epochs entry", e) for e in lr_decay_epochs
        )
        if not check_fraction("lr_decay", lr_decay) > 0:
            raise ValueError(f"lr_decay must be in (0, 1), got {lr_decay!r}")
        self.lr_decay = float(lr_decay)
        if settings is None:
            settings = {}
        try:
            if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
                raise TypeError("not a dict with string keys")
            json.dumps(settings, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"settings must be a JSON-able dict with string keys, got {_short(settings)} ({e})"
            ) from None
        self.settings = dict(settings)
        self.checkpoint_path = (
            None if checkpoint_path is None else check_path("checkpoint_path", checkpoint_path)
        )
        self.iter_per_epoch = math.ceil(len(x_train) / self.batch_size)
        self.epoch = 0  # epochs completed
        self.history: dict[str, list] = {key: [] for key in HISTORY_KEYS}

    # -- one step, one epoch -----------------------------------------------------------------

    def train_step(self, x_batch: np.ndarray, t_batch: np.ndarray) -> float:
        """One gradient step on a batch; return the batch loss (before the step)."""
        if self.augmenter is not None:
            x_batch = self.augmenter(x_batch)  # its own rng, or self.rng for augment=True
        # A diverging run overflows; train() reports that once, clearly, instead of numpy
        # printing a warning per layer.
        with np.errstate(over="ignore", invalid="ignore"):
            grads = self.network.gradient(x_batch, t_batch)
            loss = self.network.last_loss
            self.optimizer.update(self.network.params, grads)
        return loss

    def _epoch_batches(self):
        order = self.rng.permutation(len(self.x_train))
        for i in range(0, len(order), self.batch_size):  # the last, shorter batch included
            idx = np.sort(order[i : i + self.batch_size])  # sorted: faster gathers, same set
            yield self.x_train[idx], self.t_train[idx]

    def evaluate(self) -> tuple[float, float]:
        """Accuracy on (a prefix of) the training and the test set."""
        n = self.evaluate_sample_num_per_epoch
        x_tr, t_tr = self.x_train[:n], self.t_train[:n]
        x_te, t_te = self.x_test[:n], self.t_test[:n]
        return self.network.accuracy(x_tr, t_tr), self.network.accuracy(x_te, t_te)

    def _progress(self, epoch: int):
        if not self.verbose:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional: the cli extra brings it
            return None
        return tqdm(
            total=self.iter_per_epoch,
            desc=f"epoch {epoch}/{self.epochs}",
            unit="it",
            leave=True,
            dynamic_ncols=True,
        )

    def train(self) -> dict[str, list]:
        """Train the remaining epochs; return the history.

        With a ``checkpoint_path``, the checkpoint is locked
        (``scratchdl.support.atomic.lock_file``) while training, so a second run on it raises
        ``FolderLocked``; temporary files of a run that was killed while writing it are
        removed once the lock is taken.
        """
        if self.checkpoint_path is None:
            return self._train()
        check_writable(self.checkpoint_path.parent)  # a full disk fails now, not later
        with lock_file(self.checkpoint_path):
            for stale in stale_temp_files(self.checkpoint_path):  # a dead run's, as we hold it
                stale.unlink(missing_ok=True)
            return self._train()

    def _train(self) -> dict[str, list]:
        while self.epoch < self.epochs:
            epoch = self.epoch + 1
            if epoch in self.lr_decay_epochs:
                self.optimizer.lr = self.optimizer.lr * self.lr_decay
            bar = self._progress(epoch)
            start = time.perf_counter()
            running = None
            try:
                for x_batch, t_batch in self._epoch_batches():
                    loss = self.train_step(x_batch, t_batch)
                    if not math.isfinite(loss):
                        raise self._diverged(f"the loss became {loss}", epoch, 1)
                    self.history["loss"].append(loss)
                    running = loss if running is None else 0.95 * running + 0.05 * loss
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
            finally:
                if bar is not None:
                    bar.close()
            # every step but the last showed its weights in the next step's loss
            self._check_weights(epoch)
            train_acc, test_acc = self.evaluate()
            self.history["train_acc"].append(train_acc)
            self.history["test_acc"].append(test_acc)
            self.history["epoch_seconds"].append(time.perf_counter() - start)
            self.epoch = epoch
            if self.verbose:
                print(
                    f"=== epoch {epoch}/{self.epochs}: train acc {train_acc:.4f}, "
                    f"test acc {test_acc:.4f}, {self.history['epoch_seconds'][-1]:.1f} s"
                )
            if self.checkpoint_path is not None:
                self._write_checkpoint()
        return self.history

    def _check_weights(self, epoch: int) -> None:
        """Raise TrainingDiverged if a parameter or buffer holds NaN or infinity, or if the
        network's scores for the first PROBE_SAMPLES test samples do (finite weights so large
        that the forward pass overflows)."""
        weights = getattr(self.network, "state_dict", lambda: self.network.params)()
        for name, array in weights.items():
            finite = np.isfinite(array)
            if not finite.all():
                bad = array[~finite].flat[0]
                raise self._diverged(f"the weights became {bad} ({name})", epoch, 0)
        predict = getattr(self.network, "predict", None)
        if predict is None:
            return
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, once
            y = np.asarray(predict(self.x_test[:PROBE_SAMPLES]))
        finite = np.isfinite(y)
        if not finite.all():
            largest = max(float(np.abs(w).max(initial=0)) for w in weights.values())
            raise self._diverged(
                f"the network's scores became {y[~finite].flat[0]} (weights up to {largest:.3g})",
                epoch,
                0,
            )

    def _diverged(self, what: str, epoch: int, ahead: int) -> TrainingDiverged:
        """The error for a run that diverged at iteration len(loss history) + ``ahead``."""
        ckpt = self.checkpoint_path
        return TrainingDiverged(
            f"{what} at iteration {len(self.history['loss']) + ahead} (epoch {epoch}); "
            f"training stopped. Try a smaller learning rate (now "
            f"{getattr(self.optimizer, 'lr', '?')})"
            # not "good": a resumed checkpoint may be what made it diverge (a damaged file)
            + (
                f"; the checkpoint {ckpt} still holds the state after epoch {self.epoch}"
                if ckpt and self.epoch and ckpt.exists()
                else ""
            )
        )

    def _write_checkpoint(self) -> None:
        path = self.checkpoint_path
        try:
            self.save_checkpoint(path)
        except OSError as e:  # a full disk: say what is lost and what is kept
            kept = (
                "the previous one is intact: free some space, then resume from it"
                if path.exists()
                else "none was written before"
            )
            raise OSError(
                e.errno,
                f"cannot write the checkpoint {path} after epoch {self.epoch}: "
                f"{e.strerror or e}; {kept}",
            ) from e

    # -- history and checkpoints -------------------------------------------------------------

    def save_history(self, path: str | os.PathLike) -> None:
        """Write the history as JSON (atomically)."""
        atomic_write(path, json.dumps(self.history, indent=1).encode())

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write everything needed to continue this run: weights, optimizer, rng, history.

        NaN or infinite weights raise ValueError and leave an existing file as it was.
        """
        write_checkpoint(path, self._state(), {**self._settings(), "epochs": self.epochs})

    def resume(self, path: str | os.PathLike) -> int:
        """Load a checkpoint written by ``save_checkpoint`` into this trainer and network.

        The ``settings``, network, optimizer type, batch size, learning-rate schedule and
        augmentation generator (its own or none) must be the ones of the saved run, else
        ValueError naming each that differs; ``train()`` then continues after the saved epoch
        (``self.epoch``) up to ``self.epochs``. A damaged or foreign checkpoint raises
        ModelFileError (a ValueError) naming the file. Either error leaves this trainer, its
        network and optimizer exactly as they were. Returns the epochs the saved run was set
        to train, for a caller that continues its plan.
        """
        state = read_checkpoint(path, {**self._settings(), "augmenter_rng": self._own_aug_rng()})
        before = self._state()
        try:
            unknown = {k.partition("/")[2] for k in state["optimizer"] if "/" in k}
            unknown -= set(self.network.params)
            if unknown:
                raise ValueError(f"optimizer state for unknown parameters {sorted(unknown)}")
            with np.errstate(over="ignore"):  # a value beyond the model's dtype: refused below
                self._set_state(state)
            for name, array in self.network.state_dict().items():
                if not np.isfinite(array).all():  # finite in the file, not in the model's dtype
                    raise ValueError(f"model/{name} holds values beyond the range of {array.dtype}")
            self.optimizer.check(self.network.params, self.network.params)  # the state fits
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            self._set_state(before)  # a checkpoint that fails halfway leaves no half-resumed run
            raise ModelFileError(f"{path}: the checkpoint does not fit this run: {e}") from None
        return state["epochs"]

    def _settings(self) -> dict:
        """What a checkpoint must share with the run that resumes it."""
        return {
            "class": type(self.network).__name__,
            "config": self.network.config,
            "optimizer": type(self.optimizer).__name__,
            "mini_batch_size": self.batch_size,
            "lr_decay_epochs": self.lr_decay_epochs,
            "lr_decay": self.lr_decay,
            "settings": self.settings,
        }

    def _own_aug_rng(self) -> bool:
        """True if the Augmenter draws from a generator other than ``self.rng``."""
        return self.augmenter is not None and self.augmenter.rng is not self.rng

    def _state(self) -> dict:
        """A copy of everything ``resume`` sets, in the form of ``read_checkpoint``."""
        own = self.augmenter.rng if self._own_aug_rng() else None
        return {
            "model": {k: v.copy() for k, v in self.network.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "model_rngs": self.network.rng_states(),
            "augmenter_rng": None if own is None else own.bit_generator.state,
            "history": {k: list(v) if isinstance(v, list) else v for k, v in self.history.items()},
            "epoch": self.epoch,
        }

    def _set_state(self, state: dict) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.network.set_rng_states(state["model_rngs"])
        if state["augmenter_rng"] is not None:
            self.augmenter.rng.bit_generator.state = state["augmenter_rng"]
        self.history, self.epoch = state["history"], state["epoch"]


def _check_samples(network, split: str, x: np.ndarray, t: np.ndarray) -> None:
    """Check a data set against the network before training: shapes, labels, finite values."""
    if isinstance(network, Sequential):  # its own checks, so the messages are the same later
        try:
            network.check_batch(x, t)
        except ValueError as e:
            raise ValueError(f"x_{split}, t_{split}: {e}") from None
    check_finite(
        f"x_{split}",
        x,
        fix="NaN or infinite inputs make the loss NaN; clean or drop that sample",
    )
