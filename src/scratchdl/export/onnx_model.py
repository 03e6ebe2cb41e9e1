"""ONNX files of scratchdl models: ``to_onnx(model, path)`` and ``onnx_model(model)``.

The graph (``onnx_graph.plan_graph``) takes ``x`` of shape (N, *input_shape), float32, N left
dynamic, and gives ``logits`` (N, K), what ``model.predict`` returns, and ``probabilities``
(N, K), their softmax over the last axis. onnx is imported here, inside the functions, so
that importing scratchdl never needs it (``pip install 'scratchdl[onnx]'`` brings it).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..files.model_file import scratchdl_version
from ..models import Sequential
from ..support.atomic import atomic_write
from ..support.checks import check_path
from .onnx_graph import EXPORT_DTYPE, INPUT, LOGITS, PROBABILITIES, plan_graph

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "check_opset",
    "describe",
    "ir_version_for",
    "onnx_model",
    "to_onnx",
]

DEFAULT_OPSET = 17
# Softmax(axis=-1) means "over the last axis" from opset 13 (before, it flattened the trailing
# axes); the other operators used keep their meaning from 13 up to onnx's newest opset.
MIN_OPSET = 13
BATCH = "N"  # the name of the dynamic batch dimension
INSTALL_HINT = "pip install 'scratchdl[onnx]'"


def import_onnx():
    """The onnx module, or ImportError with the command that installs it."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError(f"ONNX export needs the onnx package ({e}); {INSTALL_HINT}") from None
    return onnx


def ir_version_for(opset: int) -> int:
    """The oldest ONNX IR version that can hold ``opset`` (opset 17 -> IR 8).

    Not onnx's own default IR (``onnx.IR_VERSION``), which follows the onnx release:
    onnx 1.23 writes IR 14, which onnxruntime 1.30 refuses. The oldest fitting IR is what
    every runtime that knows the opset loads. From onnx's release table (onnx.helper.
    VERSION_TABLE: release, IR, opset, ...), present in every onnx this package admits.
    """
    onnx = import_onnx()
    fits = [ir for _, ir, ops, *_ in onnx.helper.VERSION_TABLE if ops >= opset]
    if not fits:
        raise ValueError(f"onnx {onnx.__version__} knows no IR version for opset {opset}")
    return min(fits)


def check_opset(opset: object) -> int:
    """``opset`` as an int in [MIN_OPSET, the installed onnx's newest]; else ValueError."""
    onnx = import_onnx()
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be a whole number from {MIN_OPSET} to {newest} (the newest that onnx "
            f"{onnx.__version__} knows), got {opset!r}; the default is {DEFAULT_OPSET}"
        )
    return opset


def _architecture(model: Sequential) -> str:
    """JSON of what the model is: class, config (what rebuilds it) and layers."""
    return json.dumps(
        {
            "class": type(model).__name__,
            "config": model.config,
            "layers": [repr(layer) for layer in model.layers],
        },
        sort_keys=True,
    )


def onnx_model(
    model: Sequential,
    *,
    opset: int = DEFAULT_OPSET,
    input_shape: tuple[int, ...] | None = None,
    model_file: str | os.PathLike | None = None,
):
    """The ONNX ModelProto of ``model`` (see ``to_onnx``), checked by ``onnx.checker``."""
    plan = plan_graph(model, input_shape)  # an unsupported layer fails before onnx is needed
    onnx = import_onnx()
    opset = check_opset(opset)
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(EXPORT_DTYPE))
    K = plan.output_size
    graph = helper.make_graph(
        [
            helper.make_node(n.op_type, list(n.inputs), [n.output], name=n.output, **n.attrs)
            for n in plan.nodes
        ],
        type(model).__name__,
        [helper.make_tensor_value_info(INPUT, elem, [BATCH, *plan.input_shape])],
        [
            helper.make_tensor_value_info(LOGITS, elem, [BATCH, K]),
            helper.make_tensor_value_info(PROBABILITIES, elem, [BATCH, K]),
        ],
        [numpy_helper.from_array(a, name) for name, a in plan.initializers.items()],
    )
    shape = ", ".join(map(str, plan.input_shape))
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        ir_version=ir_version_for(opset),
        producer_name="scratchdl",
        producer_version=scratchdl_version(),
        doc_string=(
            f"{type(model).__name__} from scratchdl: x (N, {shape}) float32 -> logits "
            f"(N, {K}), the scores of model.predict, and probabilities (N, {K}), their softmax"
        ),
    )
    props = {"architecture": _architecture(model), "scratchdl_version": scratchdl_version()}
    if model_file is not None:
        name = os.fsencode(check_path("model_file", model_file).name)
        props["model_file"] = name.decode("utf-8", "backslashreplace")  # ONNX text is UTF-8
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)  # types and shapes inferred through
    return proto


def to_onnx(
    model: Sequential,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    input_shape: tuple[int, ...] | None = None,
    model_file: str | os.PathLike | None = None,
) -> dict[str, object]:
    """Write ``model`` as an ONNX file for inference, atomically.

    The graph: input ``x`` (N, *input_shape) float32 with a dynamic batch N; outputs
    ``logits`` (N, K), equal to ``model.predict(x)``, and ``probabilities`` (N, K), their
    softmax over the last axis. It computes in float32 whatever the model's dtype (weights
    are cast). ``opset`` from MIN_OPSET (13) to the installed onnx's newest, default 17; the
    IR version is the oldest that holds the opset (``ir_version_for``), so that current
    onnxruntime loads the file. Metadata: ``architecture`` (JSON: class, config, layers),
    ``scratchdl_version`` and, when given, the ``model_file``'s name; producer "scratchdl".

    ``input_shape`` (one sample's) defaults to ``model.input_shape``. Raises ValueError naming
    the layer that has no ONNX form (see ``onnx_graph``), ImportError naming the install
    command when onnx is missing, OSError when ``path`` cannot be written; in each case
    before anything is written, and an existing file at ``path`` is left as it was.
    Returns a report: path, bytes, opset, ir_version, input_shape, output_size.
    """
    path = check_path("path", path)
    proto = onnx_model(model, opset=opset, input_shape=input_shape, model_file=model_file)
    data = proto.SerializeToString()
    try:
        atomic_write(path, data)
    except OSError as e:  # a full disk says only "[Errno 28] No space left on device"
        if str(path) in str(e):
            raise
        raise OSError(
            e.errno, f"cannot write {path}: {e.strerror or e}; nothing was written there"
        ) from e
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return {
        "path": str(path),
        "bytes": len(data),
        "opset": opset,
        "ir_version": proto.ir_version,
        "input_shape": tuple(d.dim_value for d in dims[1:]),
        "output_size": proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value,
    }


def describe(report: dict[str, object]) -> str:
    """One line for a ``to_onnx`` report: what was written where."""
    shape = ", ".join(map(str, report["input_shape"]))
    return (
        f"wrote {report['path']} ({report['bytes']:,} bytes, opset {report['opset']}, IR "
        f"{report['ir_version']}): input x (N, {shape}) float32 -> logits, probabilities "
        f"(N, {report['output_size']})"
    )
