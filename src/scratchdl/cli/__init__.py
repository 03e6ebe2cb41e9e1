"""The scratchdl command: train, evaluate, predict, data, experiment, search, serve, export, info.

Every user error (a wrong argument, a missing or corrupt file, a data set that cannot be
found) ends with exit status 2 and one line on stderr that says what is wrong (followed, where
there are several ways to fix it, by one line for each); no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from .. import datasets
from ..engine.threads import get_num_threads, set_num_threads
from ..models.recipes import DEFAULT_EPOCHS, DEFAULT_OPTIMIZER, MODEL_CHOICES
from ..models.recipes import DEFAULT_LR as DEFAULT_LR  # the train command's, named here too
from ..models.recipes import new_network as new_network
from ..optimizers import OPTIMIZERS
from ..support.atomic import check_writable
from ..support.figures import LANGS
from . import data as cli_data
from . import export as cli_export
from . import info as cli_info
from . import search as cli_search
from . import serve as cli_serve
from . import train as cli_train
from .args import folder, positive_float, positive_int, printable

FASHION_CLASSES = (
    "T-shirt", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Boot",
)  # fmt: skip
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE: what a shell reports for `seq 1e6 | head -1`
MODEL_SUFFIXES = (".safetensors", ".pkl")  # predict's first argument is a model by its name
DESCRIPTION = (
    "The networks of the book Deep Learning from Scratch (ゼロから作る Deep Learning):\n"
    "train them on MNIST, look inside them, and take them elsewhere."
)
EPILOG = """first steps:
  scratchdl train                      train SimpleConvNet on MNIST (fetched and verified)
  scratchdl predict digit.png          classify an image with the shipped SimpleConvNet
  scratchdl serve                      draw a digit in the browser and see every layer
  scratchdl export --out cnn.onnx      the shipped model as an ONNX file
  scratchdl info                       versions, BLAS, data: what a bug report needs
scratchdl COMMAND --help shows a command's options."""


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def load_dataset(name: str, *, data_dir=None):
    """The (train, test) pairs of a ``--dataset`` choice, as images (N, 1, 28, 28) in [0, 1]."""
    loader = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}[name]
    return loader(normalize=True, flatten=False, data_dir=data_dir)


# -- train (cli/train.py) ------------------------------------------------------------------


def cmd_train(args) -> int:
    return cli_train.train(args, load_dataset)  # this module's data set loader (tests replace it)


def _prepare_out(out: Path) -> None:
    """Create --out and make sure a file can be written there, before any training: a full
    disk or a read-only folder shows up now, not after hours of training."""
    try:
        check_writable(out)
    except OSError as e:  # its message names the folder and the reason
        raise UsageError(f"--out: {e.strerror or e}") from e


# -- evaluate -------------------------------------------------------------------------------


def cmd_evaluate(args) -> int:
    from ..datasets.mnist import IMAGE_SHAPE, N_CLASSES
    from ..files import load_model
    from ..support import figures as plots

    model, what = load_model(args.model)
    print(what)
    K = model.output_size  # may exceed the data set's classes: those are never right
    try:  # before the data set is read: a model for other images fails at once
        model.check_batch(np.zeros((1, 1, *IMAGE_SHAPE), dtype=model.dtype))
    except ValueError:
        raise UsageError(
            f"{args.model}: the model takes inputs of shape {model.input_shape}, not the "
            f"grayscale {'x'.join(map(str, IMAGE_SHAPE))} images of {args.dataset}; evaluate "
            "it on the data set it was trained on"
        ) from None
    if K < N_CLASSES:
        raise UsageError(
            f"{args.model}: the model has {K} outputs (classes), fewer than the {N_CLASSES} "
            f"classes of {args.dataset}; evaluate it on the data set it was trained on"
        )
    (_, _), (x_test, t_test) = load_dataset(args.dataset, data_dir=args.data_dir)
    scores = np.concatenate(
        [model.predict(x_test[i : i + 500]) for i in range(0, len(x_test), 500)]
    )
    y = scores.argmax(axis=1)
    accuracy = float(np.mean(y == t_test))
    out = Path(args.out) if args.out else _figures_folder(Path(args.model))
    _prepare_out(out)
    names = list(FASHION_CLASSES) if args.dataset == "fashion-mnist" else []
    names += [str(k) for k in range(len(names), K)]  # digits, and outputs beyond the classes
    matrix = plots.confusion_matrix(t_test, y, N_CLASSES, num_predicted=K)
    plots.plot_confusion_matrix(
        matrix,
        out / "confusion_matrix.png",
        names,
        title=f"{Path(args.model).name} on {args.dataset}: {accuracy:.4f}",
    )
    wrong = np.flatnonzero(y != t_test)[: args.max_images]
    plots.image_grid(
        x_test[wrong].reshape(len(wrong), *IMAGE_SHAPE),
        [f"{names[t_test[i]]}→{names[y[i]]}" for i in wrong],
        out / "misclassified.png",
        title=f"misclassified: true→predicted ({len(np.flatnonzero(y != t_test))} in all)",
    )
    print(
        f"test accuracy: {accuracy:.4f} ({int(np.sum(y == t_test))}/{len(t_test)}, {args.dataset})"
    )
    print(f"wrote {out / 'confusion_matrix.png'}, {out / 'misclassified.png'}")
    return 0


def _figures_folder(model: Path) -> Path:
    """Where evaluate writes its figures by default: beside a model file that training wrote,
    or, for the book's weights (often in a folder not ours to write), runs/book-NAME."""
    if model.suffix == ".pkl":
        return Path("runs") / f"book-{model.stem}"
    return model.parent


# -- predict --------------------------------------------------------------------------------


def cmd_predict(args) -> int:
    from ..files import load_model
    from ..files.images import MNIST_SIZE, prepare_image
    from ..functions import softmax

    shipped = split_model_and_images(args)
    model, what = load_model(args.model)
    if shipped:  # on stderr: stdout keeps one line per image
        print(f"no model given: {printable(what)}, the one shipped with scratchdl", file=sys.stderr)
    try:  # a model for other images fails before any image is read
        model.check_batch(np.zeros((1, 1, MNIST_SIZE, MNIST_SIZE), dtype=model.dtype))
    except ValueError as e:
        raise UsageError(f"{args.model}: {e}: it is not for 28x28 grayscale images") from e
    for path in args.images:
        x = prepare_image(path)
        p = softmax(model.predict(x))[0]
        k = int(p.argmax())
        probs = " ".join(f"{i}:{v:.3f}" for i, v in enumerate(p))
        print(f"{printable(path)}: {k} (p={p[k]:.3f})  [{probs}]")
    return 0


def split_model_and_images(args) -> bool:
    """Sort predict's ``[MODEL] IMAGE...`` into ``args.model`` and ``args.images``; return True
    when no model was given and the shipped SimpleConvNet is used.

    The first argument is the model when its name ends in .safetensors or .pkl (the files that
    scratchdl train writes and the book's weight files); otherwise every argument is an image.
    """
    from ..serve.inference import shipped_model_path

    paths = [p for p in (args.model, *args.images) if p is not None]
    if not paths[0].endswith(MODEL_SUFFIXES):
        args.model, args.images = str(shipped_model_path()), paths
        return True
    args.model, args.images = paths[0], paths[1:]
    if not args.images:
        raise UsageError(
            f"predict: no image after the model {paths[0]}; name the images to classify "
            "(scratchdl predict [MODEL] IMAGE...)"
        )
    return False


# -- experiment -----------------------------------------------------------------------------


def cmd_experiment(args) -> int:
    from ..experiments import registry

    return registry.main(args)


# -- entry point ----------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scratchdl",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="threads for the CNNs (default $SCRATCHDL_NUM_THREADS, else the cores; 1: none)",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, title="commands"
    )

    p = sub.add_parser("train", help="train a network on MNIST or Fashion-MNIST")
    p.add_argument("--model", choices=MODEL_CHOICES, default="simple-cnn")
    p.add_argument("--dataset", choices=datasets.DATASETS, default="mnist")
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_EPOCHS.items()),
    )
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument(
        "--optimizer",
        type=str.lower,
        choices=tuple(OPTIMIZERS),
        help="default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_OPTIMIZER.items()),
    )
    p.add_argument("--lr", type=positive_float, help="learning rate (default per optimizer)")
    p.add_argument("--augment", action="store_true", help="random shift/rotation/scale")
    p.add_argument(
        "--lr-decay-epochs",
        type=positive_int,
        nargs="+",
        default=(),
        metavar="EPOCH",
        help="multiply the learning rate by --lr-decay at these epochs",
    )
    p.add_argument("--lr-decay", type=positive_float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=folder, help="output folder (default runs/MODEL-DATASET)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument(
        "--eval-samples",
        type=positive_int,
        default=10000,
        help="images of each set evaluated after every epoch (default 10000)",
    )
    p.add_argument("--data-dir", help="folder with the IDX files (default $SCRATCHDL_DATA)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, confusion matrix, misclassified images")
    p.add_argument("model", help="a model file of scratchdl train, or one of the book's .pkl files")
    p.add_argument("--dataset", choices=datasets.DATASETS, default="mnist")
    p.add_argument(
        "--out",
        type=folder,
        help="figures' folder (default: the model's; runs/book-NAME for .pkl)",
    )
    p.add_argument("--max-images", type=positive_int, default=60)
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        help="classify images of digits (PNG, JPEG, GIF, BMP, WebP, TIFF)",
        description="Classify each IMAGE (a photo or scan of a digit, centred as MNIST's are) "
        "with MODEL, or without MODEL with the SimpleConvNet shipped with scratchdl.",
    )
    p.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="a model file of scratchdl train (.safetensors) or one of the book's .pkl files, "
        "known by its name's ending; without it, the shipped SimpleConvNet",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="an image of one digit")
    p.set_defaults(func=cmd_predict)

    cli_data.add_command(sub)

    p = sub.add_parser("experiment", help="run one of the book's experiments")
    p.add_argument("name", nargs="?")
    p.add_argument("--list", action="store_true")
    p.add_argument(
        "--out", type=folder, default="figures", help="folder for the PNG and JSON files"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", help="a model file, for experiments that use one")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change one of the experiment's settings (repeatable)",
    )
    p.add_argument(
        "--workers", type=positive_int, help="parallel worker processes (hyperparameter-search)"
    )
    p.add_argument(
        "--lang",
        choices=LANGS,
        default="en",
        help="language of the figures' titles, axis labels and legends (default en)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_experiment)

    for command in (cli_search, cli_serve, cli_export, cli_info):
        command.add_command(sub)
    return parser


def _version() -> str:
    from ..files.model_file import scratchdl_version

    return f"scratchdl {scratchdl_version()}"


def print_error(error: BaseException) -> None:
    """``scratchdl: error:`` and the error's first line, then its other lines (the ways to fix
    it, one a line) as they are."""
    message = str(error).strip() or type(error).__name__
    name = getattr(error, "filename", None)
    if isinstance(error, OSError) and isinstance(name, (str, bytes)) and error.strerror:
        # str() quotes the name with repr(), which shows a byte that is not UTF-8 as \udcff
        message = f"{error.strerror}: {os.fsdecode(name)}"
    print(f"scratchdl: error: {printable(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from ..files import ModelFileError
    from ..trainer import TrainingDiverged

    args = None
    try:
        args = make_parser().parse_args(argv)
        if args.threads is not None:
            set_num_threads(args.threads)
        else:
            get_num_threads()  # a bad $SCRATCHDL_NUM_THREADS fails here, with one clear line
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
        return code
    except BrokenPipeError:
        # stdout's reader has gone (`scratchdl ... | head -1`): stop quietly, as Unix tools
        # do when SIGPIPE ends them, with their status; stdout goes to devnull so that the
        # flush at exit does not report the broken pipe again (Python docs, "Note on SIGPIPE")
        with contextlib.suppress(OSError, ValueError, AttributeError):  # no fd under pytest
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except MemoryError:
        print(f"scratchdl: error: {_out_of_memory(args)}", file=sys.stderr)
    except UsageError as e:
        print(f"error: {printable(str(e))}", file=sys.stderr)
    except (ValueError, OSError, ModelFileError, TrainingDiverged, ImportError) as e:
        print_error(e)
    except KeyboardInterrupt:
        print("scratchdl: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


def _out_of_memory(args) -> str:
    """The one line for a MemoryError: the likely cause and the fix."""
    command = getattr(args, "command", None)
    if command == "train":
        return (
            f"out of memory: a batch of {args.batch_size} images through {args.model} needs "
            "more memory than is free; use a smaller --batch-size (the default is 100)"
        )
    fix = {
        "experiment": "run it with --quick, or with fewer --workers",
        "predict": "give it fewer or smaller images at a time",
        "search": "use fewer --workers per machine, or a smaller --set train_size",
    }.get(command, "free some memory or use a machine with more")
    return f"out of memory in scratchdl {command or ''}".rstrip() + f"; {fix}"
