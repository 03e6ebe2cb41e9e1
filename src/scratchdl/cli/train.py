"""``scratchdl train``: one run in one folder, locked while it runs, resumable.

The run folder (``--out``) holds ``checkpoint.safetensors`` (after every epoch) and, once
training ends, RUN_FILES. It is locked for the whole command (``scratchdl.support.atomic.
lock_folder``), so a second run into it is refused and only a dead run's temporary files are
removed. ``--resume`` continues the saved run: its settings must be the same (the checkpoint
records them; ``--lr`` may change, ``--epochs`` may grow), and a run whose files a full disk
kept from being written writes them without training again.

Part of the command line: ``cli/__init__.py`` holds the parser, the other commands and
``main``, which prints the ValueError (or OSError) of a wrong argument as one line, exit
status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..files.run_folder import (
    RUN_FILES,
    WRITTEN,
    mark_stopped,
    run_files_written,
    write_run_files,
)
from ..models.recipes import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_OPTIMIZER, new_network
from ..support.atomic import check_writable, lock_folder, stale_temp_files


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
    from ..trainer import Trainer

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
        mark_stopped(out, trainer.history)  # serve's Runs tab shows it stopped
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
    from ..datasets.download import log

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
    if done > epochs or (done == epochs and run_files_written(out, trainer.epoch)):
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
    """RUN_FILES; on a full disk, say that the weights are safe and how to write the files."""
    try:
        write_run_files(trainer, out, f"{type(trainer.network).__name__} on {args.dataset}")
    except OSError as e:  # a full disk: the weights are safe in the checkpoint
        raise OSError(
            e.errno,
            f"{e.strerror}; the trained weights are safe in {trainer.checkpoint_path} (epoch "
            f"{trainer.epoch}): free some space, then run the same command with --resume to "
            "write the files without training again",
        ) from e


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
