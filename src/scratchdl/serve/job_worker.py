"""What runs in a job's worker process: one training run, its progress pushed to the server.

``main`` is the process's target (``jobs.JobManager`` starts it with multiprocessing's spawn).
It checks the settings again (it trusts nothing it is handed), builds the network with the
same code as the check did (``job_settings``), and trains it with the library's ``Trainer``
into a normal run folder under ``--runs``: ``checkpoint.safetensors`` after every epoch, then
``scratchdl train``'s RUN_FILES (``model.safetensors``, ``learning_curve.png``,
``history.json``), so that ``scratchdl evaluate``, ``predict``, ``export`` and the page's Draw
tab can use it. The folder is locked for the whole run, as ``scratchdl train`` locks it.

Progress goes to the server as JSON messages on a one-way pipe (never pickle): the loss of
every iteration (sent in bunches, PUSH_SECONDS apart), the accuracies of every epoch, every
HISTOGRAM_SECONDS the histograms of each hidden layer's activations (the book's figs. 6-10
to 6-14, on PROBE_IMAGES training images) and of each weight matrix, and for a CNN its first
layer's filters. The last message is ``end``, with the state the run ended in.

Stopping: the server sets ``stop``; the next training step raises ``StopRequested`` instead of
running, and the run's state is written to the checkpoint as it is then (the weights and
history of every step taken; the epoch counter at the last completed epoch, so a resumed run
starts that epoch over, from these weights). A worker whose server is gone (the pipe broken,
or its parent changed) stops the same way. Ctrl-C in the terminal reaches every process of
the group, so the worker ignores SIGINT: the server stops it, with its checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..files.run_folder import RUN_FILES, mark_stopped, write_run_files
from ..layers import Convolution, Relu, Sigmoid, Tanh
from ..support.atomic import lock_file, lock_folder, stale_temp_files
from ..trainer import Trainer, TrainingDiverged
from . import job_settings

CHECKPOINT = "checkpoint.safetensors"
PUSH_SECONDS = 0.25  # loss values are sent in bunches at most this far apart
HISTOGRAM_SECONDS = 1.0  # histograms and filters at most this often (and after each epoch)
PROBE_IMAGES = 100  # training images whose activations the histograms count
LOSS_DIGITS = 6  # decimals of a loss sent to the page
BINS = 30  # as the book's histograms (ch6.2.2)
PARENT_CHECK_SECONDS = 1.0
NICENESS = 10  # below the server: a Draw request is answered first
BOOK_RANGES = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0)}  # of their histograms (ch6.2.2)


class StopRequested(Exception):
    """The server asked the run to stop, or is gone."""


class Reporter:
    """The messages to the server, and whether it asked to stop."""

    def __init__(self, conn, stop, public: dict[str, str]) -> None:
        self.conn, self.stop = conn, stop
        self.public = public  # server path -> what a client may see instead
        self.losses: list[float | None] = []
        self.first = 0  # the iteration (0-based) of losses[0]
        self.sent_at = self.histogram_at = 0.0
        self.parent, self.parent_at = os.getppid(), time.monotonic()
        self.gone = False

    def send(self, message: dict) -> None:
        if self.gone:
            return
        data = json.dumps(message, allow_nan=False).encode()  # NaN never leaves: None is sent
        try:
            self.conn.send_bytes(data)
        except OSError:  # BrokenPipeError: the server is gone; stop, with the checkpoint
            self.gone = True

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self.parent_at > PARENT_CHECK_SECONDS:
            self.parent_at = now
            self.gone = self.gone or os.getppid() != self.parent
        return self.gone or self.stop.is_set()

    def loss(self, iteration: int, value: float) -> None:
        if not self.losses:
            self.first = iteration
        self.losses.append(round(value, LOSS_DIGITS) if math.isfinite(value) else None)
        if time.monotonic() - self.sent_at >= PUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.losses:
            self.send({"type": "loss", "from": self.first, "values": self.losses})
            self.losses = []
        self.sent_at = time.monotonic()

    def text(self, message: str) -> str:
        """``message`` with the server's paths replaced by what a client may see."""
        for path, shown in self.public.items():
            message = message.replace(path, shown)
        return message


class LiveTrainer(Trainer):
    """The library's Trainer, telling the server about every step and epoch."""

    def __init__(self, *args, reporter: Reporter, x_probe: np.ndarray, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reporter, self.x_probe = reporter, x_probe
        # inference twins: the same weights, caches of their own, so the probe never
        # touches what the training step keeps for its backward pass
        self.probe_layers = [layer.twin() for layer in self.network.layers]

    def train_step(self, x_batch: np.ndarray, t_batch: np.ndarray) -> float:
        if self.reporter.should_stop():  # before the step: the history holds every step taken
            raise StopRequested
        loss = super().train_step(x_batch, t_batch)
        iteration = len(self.history["loss"])  # this step's, 0-based (appended after return)
        self.reporter.loss(iteration, loss)
        if time.monotonic() - self.reporter.histogram_at >= HISTOGRAM_SECONDS:
            self.send_pictures(iteration + 1)
        return loss

    def evaluate(self) -> tuple[float, float]:
        train_acc, test_acc = super().evaluate()
        self.reporter.flush()
        self.send_pictures(len(self.history["loss"]))
        self.reporter.send(
            {"type": "epoch", "epoch": self.epoch + 1, "train_acc": train_acc, "test_acc": test_acc}
        )
        return train_acc, test_acc

    def send_pictures(self, iteration: int) -> None:
        """The histograms (and a CNN's filters) after ``iteration`` steps."""
        self.reporter.histogram_at = time.monotonic()
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: reported later
            message = {"type": "histograms", "iteration": iteration, **self.histograms()}
            self.reporter.send(message)
            filters = first_filters(self.network)
            if filters is not None:
                self.reporter.send({"type": "filters", "iteration": iteration, **filters})

    def histograms(self) -> dict:
        x = self.x_probe
        if self.network.input_shape is not None:
            x = x.reshape(len(x), *self.network.input_shape)
        activations = []
        last = len(self.probe_layers) - 1
        for i, layer in enumerate(self.probe_layers):
            x = layer.forward(x, train=False)
            if isinstance(layer, (Relu, Sigmoid, Tanh)) and i < last:  # a hidden layer's output
                kind = type(layer).__name__
                activations.append(
                    {"layer": len(activations) + 1, "kind": kind, **histogram(x, kind)}
                )
        weights = [
            {"name": name, **histogram(W, "weights")}
            for name, W in self.network.params.items()
            if name.startswith("W")
        ]
        return {"activations": activations, "weights": weights}


def histogram(a: np.ndarray, kind: str) -> dict:
    """BINS counts of the values of ``a`` over [lo, hi]: the book's ranges for Sigmoid (0..1)
    and Tanh (-1..1); for Relu the positive values only, ``zero`` being the share of zeros
    (they would dwarf every other bin); for weights a range symmetric about 0."""
    a = np.asarray(a, dtype=np.float32).ravel()
    a = a[np.isfinite(a)]
    zero = None
    if kind == "Relu":
        zero = float(np.mean(a == 0)) if a.size else 0.0
        a = a[a > 0]
        lo, hi = 0.0, float(a.max()) if a.size else 1.0
    elif kind in BOOK_RANGES:
        lo, hi = BOOK_RANGES[kind]
    else:
        hi = float(np.abs(a).max()) if a.size else 1.0
        lo = -hi
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, _ = np.histogram(a, bins=BINS, range=(lo, hi))
    return {"lo": lo, "hi": hi, "counts": counts.tolist(), "zero": zero}


def first_filters(network) -> dict | None:
    """The first convolution's filters (FN, C, FH, FW) as gray levels; None in an MLP."""
    from .inference import to_bytes

    for layer in network.layers:
        if isinstance(layer, Convolution):
            return to_bytes(layer.params["W"])
    return None


def main(spec: dict, conn, stop) -> None:
    """The worker process: train the run of ``spec`` (``settings``, ``run_dir``, ``public``
    names for paths, ``resume``, ``threads``, ``data_dir``), report on ``conn``, stop when
    ``stop`` (an Event) is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us, with a checkpoint
    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):  # Windows; or not allowed: the run goes on as it is
        pass
    out = Path(spec["run_dir"])
    reporter = Reporter(conn, stop, spec["public"])
    try:
        end = run(spec, out, reporter)
    except StopRequested:
        end = {"state": "stopped", "message": "stopped; resume it to go on"}
    except TrainingDiverged as e:
        end = {"state": "diverged", "message": reporter.text(str(e))}
    except (ValueError, OSError) as e:  # a full disk, a run folder in use, damaged data
        end = {"state": "failed", "message": reporter.text(str(e))}
    except MemoryError:
        end = {"state": "failed", "message": "the worker ran out of memory; make the run smaller"}
    except Exception as e:  # a bug: the details go to the server's log, not to the client
        traceback.print_exc(file=sys.stderr)
        end = {"state": "failed", "message": f"internal error ({type(e).__name__}); see the log"}
    end["checkpoint"] = (out / CHECKPOINT).is_file()
    reporter.flush()
    reporter.send({"type": "end", **end})
    conn.close()


def run(spec: dict, out: Path, reporter: Reporter) -> dict:
    from threadpoolctl import threadpool_limits

    from ..engine.threads import set_num_threads

    s = job_settings.check_settings(spec["settings"])
    threads = int(spec.get("threads", 1))
    set_num_threads(threads)
    with lock_folder(out), threadpool_limits(limits=threads, user_api="blas"):
        for name in RUN_FILES:  # a run killed while it wrote them: no other can be writing
            for stale in stale_temp_files(out / name):
                stale.unlink(missing_ok=True)
        (x_train, t_train), (x_test, t_test) = job_settings.load_data(
            s, data_dir=spec.get("data_dir")
        )
        rng = np.random.default_rng(s["seed"])
        network = job_settings.build_network(s, rng=rng)
        trainer = LiveTrainer(
            network,
            x_train,
            t_train,
            x_test,
            t_test,
            epochs=s["epochs"],
            mini_batch_size=s["batch_size"],
            optimizer=s["optimizer"],
            optimizer_param={"lr": s["lr"]},
            evaluate_sample_num_per_epoch=s["eval_samples"],
            verbose=False,
            augment=s["augment"],
            checkpoint_path=out / CHECKPOINT,
            rng=rng,
            # resume refuses a checkpoint of other settings; the rate may change, as with
            # scratchdl train --resume --lr (say, after a divergence)
            settings={"scratchdl serve job": {k: v for k, v in s.items() if k != "lr"}},
            reporter=reporter,
            x_probe=x_train[:PROBE_IMAGES],
        )
        if spec.get("resume"):
            trainer.resume(out / CHECKPOINT)
            trainer.optimizer.lr = s["lr"]  # the checkpoint's, unless the resume chose another
            history = trainer.history
            reporter.send(
                {
                    "type": "restored",
                    "loss": [round(v, LOSS_DIGITS) for v in history["loss"]],  # as sent live
                    "train_acc": history["train_acc"],
                    "test_acc": history["test_acc"],
                }
            )
        per_epoch, _ = job_settings.iterations(s)
        reporter.send(
            {
                "type": "started",
                "epoch": trainer.epoch,
                "iterations_per_epoch": per_epoch,
                "parameters": network.n_params(),
                "train_images": len(x_train),
            }
        )
        # the weights it starts from: at first, the book's figs. 6-10 to 6-14
        trainer.send_pictures(len(trainer.history["loss"]))
        try:
            trainer.train()
        except StopRequested:
            with lock_file(out / CHECKPOINT):
                trainer.save_checkpoint(out / CHECKPOINT)
            mark_stopped(out, trainer.history)  # the Runs tab shows it stopped, not training
            raise
        test_acc = network.accuracy(x_test, t_test)
        trainer.history["final_test_acc"] = test_acc
        write_run_files(trainer, out, f"{type(network).__name__} on {s['dataset']}")
    return {"state": "finished", "message": "", "final_test_acc": test_acc}
