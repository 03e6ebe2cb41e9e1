"""The ``scratchdl export`` command: a model file (or one of the book's .pkl files) as an ONNX
file for inference (``scratchdl.export.to_onnx``).

Everything the user can get wrong (onnx missing, a bad --opset, an --out that cannot be
written, a missing or corrupt model, a layer without an ONNX form) is found before the file
is written, and reported as one line with exit status 2 by ``cli.main``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..export.onnx_model import DEFAULT_OPSET, MIN_OPSET
from .args import positive_int, printable

FORMATS = ("onnx",)


def add_command(sub) -> None:
    """Add the export subcommand to the subparsers ``sub`` of cli.make_parser."""
    p = sub.add_parser(
        "export",
        help="write a model as an ONNX file, for onnxruntime and other runtimes",
        description=(
            "Write MODEL as an ONNX file: input x (N, *input shape) float32, N dynamic; "
            "outputs logits (what predict returns) and probabilities (their softmax). "
            "Without MODEL, the SimpleConvNet shipped with scratchdl. "
            "Needs pip install 'scratchdl[onnx]'."
        ),
    )
    p.add_argument(
        "model",
        nargs="?",
        help="a model file of scratchdl train, or one of the book's .pkl files (default: the "
        "SimpleConvNet shipped with scratchdl)",
    )
    p.add_argument("--format", choices=FORMATS, default="onnx", help="default onnx (the only one)")
    p.add_argument(
        "--out",
        type=_file,
        required=True,
        help="the file to write, e.g. model.onnx (required: the model's folder, such as the "
        "book's weights, may not be ours to write into); replaced atomically if it exists",
    )
    p.add_argument(
        "--opset",
        type=positive_int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, from {MIN_OPSET} to the newest the installed onnx knows "
        f"(default {DEFAULT_OPSET})",
    )
    p.set_defaults(func=cmd_export)


def _file(text: str) -> str:
    if not text:  # "" names no file (open("") fails with a confusing message)
        raise argparse.ArgumentTypeError("must name a file, got ''")
    return text


def output_path(model: str, out: str) -> Path:
    """``out`` as a Path, checked for being writable (and not the model itself) before the
    model is read."""
    path = Path(out)
    if path.is_dir():
        raise IsADirectoryError(f"--out: {path} is a folder; name the file to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"--out: the folder {path.parent} does not exist; create it or choose another --out"
        )
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"--out: cannot write into {path.parent}; choose another --out")
    if path.exists() and Path(model).exists() and path.samefile(model):
        raise ValueError(f"--out: {path} is the model file itself; choose another --out")
    return path


def cmd_export(args) -> int:
    from ..export.onnx_model import check_opset, describe, import_onnx, to_onnx
    from ..files import load_model
    from ..serve.inference import shipped_model_path

    shipped = args.model is None
    if shipped:
        args.model = str(shipped_model_path())
    # a missing onnx, a bad opset and an unwritable --out fail before the model is read
    import_onnx()
    opset = check_opset(args.opset)
    out = output_path(args.model, args.out)
    model, what = load_model(args.model)
    print(printable(f"no model given: {what}, the one shipped with scratchdl" if shipped else what))
    report = to_onnx(model, out, opset=opset, model_file=args.model)
    print(printable(describe(report)))
    return 0
