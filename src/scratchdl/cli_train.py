"""``scratchdl train``: one run in one folder, locked while it runs, resumable.

The run folder (``--out``) holds ``checkpoint.safetensors`` (after every epoch) and, once
training ends, RUN_FILES. It is locked for the whole command (``scratchdl.atomic.
lock_folder``), so a second run into it is refused and only a dead run's temporary files are
removed. ``--resume`` continues the saved run: its settings must be the same (the checkpoint
records them; ``--lr`` may change, ``--epochs`` may grow), and a run whose files a full disk
kept from being written writes them without training again.

Part of the command line: ``cli.py`` holds the parser, the other commands and ``main``, which
prints the ValueError (or OSError) of a wrong argument as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .atomic import atomic_write, check_writable, lock_folder, stale_temp_files

MODEL_CHOICES = ("two-layer", "mlp", "simple-cnn", "deep-cnn")
DEFAULT_EPOCHS = {"two-layer": 17, "mlp": 10, "simple-cnn": 8, "deep-cnn": 20}
DEFAULT_OPTIMIZER = {"two-layer": "sgd", "mlp": "adam", "simple-cnn": "adam", "deep-cnn": "adam"}
# the learning rate without --lr; one for every optimizer of OPTIMIZERS (a test checks)
DEFAULT_LR = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.01,
    "rmsprop": 0.001,
    "adam": 0.001,
}
RUN_FILES = ("model.safetensors", "learning_curve.png", "history.json")  # written in this order
# what each file of a finished run is, for the list printed at the end
WRITTEN = {
    "model.safetensors": "the trained network: predict, evaluate, serve and export take it",
    "learning_curve.png": "accuracy on the training and test data, epoch by epoch",
    "history.json": "the numbers behind the curve, the loss of every step, the settings",
    "checkpoint.safetensors": "the whole state after the last epoch, for --resume",
}


def new_network(choice: str, *, rng, dtype=np.float32):
    """A freshly initialised network for a ``--model`` choice, sized for 28x28 grayscale
    images and 10 classes."""
    from .models import DeepConvNet, MultiLayerNet, SimpleConvNet, TwoLayerNet

    if choice == "two-layer":
        return TwoLayerNet(784, 50, 10, rng=rng, dtype=dtype)  # the book's ch5 settings
    if choice == "mlp":
        return MultiLayerNet(784, [100] * 5, 10, use_batchnorm=True, rng=rng, dtype=dtype)
    if choice == "simple-cnn":
        return SimpleConvNet(rng=rng, dtype=dtype)
    if choice == "deep-cnn":
        return DeepConvNet(rng=rng, dtype=dtype)
    raise ValueError(f"unknown model {choice!r}; choices: {', '.join(MODEL_CHOICES)}")


def train(args: argparse.Namespace, load_dataset: Callable[..., tuple]) -> int:
    """Run ``scratchdl train`` with parsed ``args``; return the exit status.

    ``load_dataset(name, data_dir=...)`` gives the ((x_train, t_train), (x_test, t_test)) of a
    ``--dataset`` choice. A wrong argument raises ValueError naming the option.
    """
    out = Path(args.out or f"runs/{args.model}-{args.dataset}")
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.model]
    if not args.resume or args.epochs is not None:  # else the checkpoint's epochs, once read
        _check_decay_epochs(args.lr_decay_epochs, epochs)
    with contextlib.ExitStack() as stack:
        try:  # a full disk or a read-only folder shows up now, not after hours of training
            check_writable(out)
            stack.enter_context(lock_folder(out))  # held until the end: no second run in it
        except OSError as e:  # FolderLocked too: the messages name the folder and the reason
            raise ValueError(f"--out: {e.strerror or e}") from None
        for name in RUN_FILES:  # a run killed while it wrote them: no other can be writing
            for stale in stale_temp_files(out / name):
                stale.unlink(missing_ok=True)
        return _train(args, out, epochs, load_dataset)


def _train(args, out: Path, epochs: int, load_dataset) -> int:
    from .trainer import Trainer

    checkpoint = out / "checkpoint.safetensors"
    if args.resume and not checkpoint.exists():
        raise ValueError(f"--resume: there is no checkpoint at {checkpoint}")
    optimizer = (args.optimizer or DEFAULT_OPTIMIZER[args.model]).lower()
    lr = args.lr if args.lr is not None else DEFAULT_LR[optimizer]
    with _data_messages(args.quiet):  # where the data came from: found, or fetched, verified
        (x_train, t_train), (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir)
    rng = np.random.default_rng(args.seed)
    network = new_network(args.model, rng=rng)
    trainer = Trainer(
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=epochs,
        mini_batch_size=args.batch_size,
        optimizer=optimizer,
        optimizer_param={"lr": lr},
        evaluate_sample_num_per_epoch=args.eval_samples,
        verbose=not args.quiet,
        augment=args.augment,
        checkpoint_path=checkpoint,
        rng=rng,
        lr_decay_epochs=tuple(args.lr_decay_epochs),
        lr_decay=args.lr_decay,
        # what a resumed run must share with the saved one (--lr may change, e.g. after a
        # diverged run; --epochs may grow); the checkpoint records it, resume compares
        settings={
            "--model": args.model,
            "--dataset": args.dataset,
            "--augment": args.augment,
            "--seed": args.seed,
            "--batch-size": args.batch_size,
            "--optimizer": optimizer,
            "--lr-decay-epochs": list(args.lr_decay_epochs),
            "--lr-decay": args.lr_decay,
        },
    )
    if args.resume:
        _resume(args, out, trainer)
        epochs = trainer.epochs
    _say(
        args,
        f"training {type(network).__name__} on {args.dataset} ({len(x_train)} images), "
        f"{_count(epochs, 'epoch')}, {trainer.optimizer!r}, batch {args.batch_size}"
        f"{', augmented' if args.augment else ''}; writing to {out}",
    )
    try:
        trainer.train()  # a finished run whose files were not all written only writes them
    except KeyboardInterrupt:  # Ctrl-C: the folder says the run stopped (serve shows it)
        _mark_stopped(out, trainer)
        raise
    test_acc = network.accuracy(x_test, t_test)
    trainer.history["final_test_acc"] = test_acc
    _write_run_files(args, out, trainer)
    print(f"final test accuracy: {test_acc:.4f} ({args.dataset}, {len(x_test)} test images)")
    print(f"wrote into {out}:")
    width = max(map(len, WRITTEN))
    for name, what in WRITTEN.items():
        print(f"  {name:<{width}}  {what}")
    _say(args, _next_steps(out / "model.safetensors"))
    return 0


def _mark_stopped(out: Path, trainer) -> None:
    """history.json of a run stopped by Ctrl-C: its curves so far and ``"stopped": true``,
    so that it does not show as training forever; --resume goes on from the checkpoint."""
    history = {**trainer.history, "stopped": True}
    with contextlib.suppress(OSError):  # a full disk: the checkpoint is still there
        atomic_write(out / "history.json", json.dumps(history, indent=1).encode())


def _next_steps(model: Path) -> str:
    """The commands to try next with the model just written, as the user can type them."""
    command, path = _command_name(), shlex.quote(str(model))
    onnx = shlex.quote(str(model.with_suffix(".onnx")))
    return "\n".join(
        [
            "next, try:",
            f"  {command} predict {path} digit.png    # a photo or drawing of a digit",
            f"  {command} serve --model {path}    # draw digits in the browser",
            f"  {command} export {path} --out {onnx}    # for onnxruntime",
        ]
    )


def _command_name() -> str:
    """``scratchdl`` when that is on PATH, else the path the command was run by (e.g.
    ``.venv/bin/scratchdl`` after scripts/train, whose venv is not activated)."""
    argv0 = Path(sys.argv[0])
    on_path = shutil.which("scratchdl")
    if argv0.name != "scratchdl" or (on_path and Path(on_path).resolve() == argv0.resolve()):
        return "scratchdl"
    return shlex.quote(str(argv0))


@contextlib.contextmanager
def _data_messages(quiet: bool) -> Iterator[None]:
    """Print what the scratchdl.datasets logger says (at INFO) while the data set loads."""
    from .datasets.download import log

    if quiet:
        yield
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _resume(args, out: Path, trainer) -> None:
    """Load the checkpoint (the settings must match); refuse when nothing is left to do."""
    checkpoint = trainer.checkpoint_path
    saved_epochs = trainer.resume(checkpoint)
    if args.epochs is None:  # continue the saved run's plan
        trainer.epochs = saved_epochs
        _check_decay_epochs(args.lr_decay_epochs, saved_epochs)
    if args.lr is not None:  # e.g. a smaller rate after a diverged run
        trainer.optimizer.lr = args.lr
    done, epochs = trainer.epoch, trainer.epochs
    if done > epochs or (done == epochs and _run_files_written(out, trainer)):
        plan = f"--epochs {epochs}" if args.epochs is not None else "its plan"
        raise ValueError(
            f"--resume: the run in {out} is at epoch {done}, so {plan} leaves nothing to "
            f"train; to extend it, pass --resume with --epochs larger than {done} (e.g. "
            f"--epochs {done + 1})"
        )
    _say(args, f"resuming {checkpoint} after epoch {done}/{epochs}")
    if done == epochs:
        _say(args, "the run has finished: writing the files it could not write before")


def _write_run_files(args, out: Path, trainer) -> None:
    """Write RUN_FILES in order, history.json (the record that all were written) last."""
    from .experiments import plots
    from .files import save

    title = f"{type(trainer.network).__name__} on {args.dataset}"
    writers = {
        "model.safetensors": lambda path: save(trainer.network, path),
        "learning_curve.png": lambda path: plots.learning_curve(trainer.history, path, title),
        "history.json": trainer.save_history,
    }
    for name in RUN_FILES:
        try:
            writers[name](out / name)
        except OSError as e:  # a full disk: the weights are safe in the checkpoint
            raise OSError(
                e.errno,
                f"cannot write {out / name}: {e.strerror or e}; the trained weights are safe "
                f"in {trainer.checkpoint_path} (epoch {trainer.epoch}): free some space, then "
                "run the same command with --resume to write the files without training again",
            ) from e


def _run_files_written(out: Path, trainer) -> bool:
    """True if the RUN_FILES of the trainer's epoch were all written (by their history.json)."""
    try:
        history = json.loads((out / "history.json").read_text())
        written = len(history["test_acc"]) == trainer.epoch and "final_test_acc" in history
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return written and (out / "model.safetensors").exists()


def _check_decay_epochs(decay_epochs, epochs: int) -> None:
    beyond = [e for e in decay_epochs if e > epochs]
    if beyond:
        raise ValueError(
            f"--lr-decay-epochs {' '.join(map(str, beyond))}: beyond --epochs {epochs}, the "
            f"rate would never decay; choose epochs from 1 to {epochs}"
        )


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text)
