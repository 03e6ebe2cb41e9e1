"""A model's layers as ONNX operators, in inference form: a plain plan (node specs and named
arrays) that ``onnx_model`` turns into protobuf. Planning needs numpy only, so a model that
cannot be exported fails here, before onnx is imported or a byte is written.

The translation, layer by layer (the per-sample shape is tracked to check every step):

- ``Affine``      Gemm(x, W, b) with transB = 0: W is stored (in, out), as x @ W + b needs;
                  4-D input is first flattened by ONNX Flatten(axis=1), which keeps C order,
                  as ``x.reshape(N, -1)`` does.
- ``Flatten``     Flatten(axis=1) (nothing for input that is already (N, D)).
- ``Convolution`` Conv: both are cross-correlations with W (FN, C, FH, FW); ONNX pads are
                  [h_begin, w_begin, h_end, w_end], all ``pad`` here.
- ``Pooling``     MaxPool: ONNX leaves padding out of the maximum, as our -inf padding does.
- ``AvgPooling``  AveragePool with count_include_pad = 1: our padded zeros count in the mean.
- ``BatchNormalization``  BatchNormalization with the running statistics (inference mode),
                  over axis 1 for (N, D) and (N, C, H, W) alike, as ours.
- ``Relu``, ``Sigmoid``, ``Tanh``  the operators of the same names.
- ``Dropout``     nothing: ours is inverted, the identity at inference.

Layers are matched by exact class: a subclass may compute something else, so it is refused
like any other layer without a translation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..columns import conv_output_size
from ..layers import (
    Affine,
    AvgPooling,
    BatchNormalization,
    Convolution,
    Dropout,
    Flatten,
    Layer,
    Pooling,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
)
from ..models import Sequential

__all__ = ["EXPORT_DTYPE", "INPUT", "LOGITS", "PROBABILITIES", "GraphPlan", "Node", "plan_graph"]

INPUT, LOGITS, PROBABILITIES = "x", "logits", "probabilities"  # the graph's public names
# The graph computes in float32 whatever the model's dtype: onnxruntime's CPU kernels for
# Conv and the pools cover float32 only, and it is what inference is deployed in.
EXPORT_DTYPE = np.float32


@dataclass(frozen=True)
class Node:
    """One ONNX node: operator, input and output tensor names, attributes."""

    op_type: str
    inputs: tuple[str, ...]
    output: str
    attrs: dict = field(default_factory=dict)


@dataclass
class GraphPlan:
    """What the ONNX graph holds: nodes in order, initializers by name (float32), the
    per-sample input shape and the number of classes K of the outputs (N, K)."""

    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    input_shape: tuple[int, ...]
    output_size: int


class _Builder:
    """Collects nodes and initializers; names tensors after the layer that makes them."""

    def __init__(self, model: Sequential) -> None:
        self.names = {id(a): name for name, a in model.state_dict().items()}
        self.nodes: list[Node] = []
        self.initializers: dict[str, np.ndarray] = {}

    def weight(self, i: int, layer: Layer, key: str, array: np.ndarray) -> str:
        """The initializer for ``array``, named as in the model's state_dict (W1, gamma2, ...)."""
        name = self.names.get(id(array), f"layer{i}_{key}")
        self.initializers[name] = np.ascontiguousarray(array, dtype=EXPORT_DTYPE)
        return name

    def node(self, i: int, layer: Layer, op_type: str, inputs: list[str], **attrs) -> str:
        output = f"layer{i}_{type(layer).__name__.lower()}_{op_type.lower()}"
        self.nodes.append(Node(op_type, tuple(inputs), output, attrs))
        return output


def _where(i: int, layer: Layer) -> str:
    return f"layer {i} ({type(layer).__name__}: {layer!r})"


def _image_shape(i: int, layer: Layer, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(
            f"{_where(i, layer)} needs images (C, H, W) per sample, but gets shape {shape}"
        )
    return shape


def _window_out(i: int, layer: Layer, H: int, W: int, FH: int, FW: int, stride: int, pad: int):
    try:
        return conv_output_size(H, FH, stride, pad), conv_output_size(W, FW, stride, pad)
    except ValueError as e:
        raise ValueError(
            f"{_where(i, layer)} does not fit its input (H, W) = ({H}, {W}): {e}"
        ) from None


def _affine(b: _Builder, i: int, layer: Affine, x: str, shape: tuple[int, ...]):
    W, bias = layer.params["W"], layer.params["b"]
    D, M = W.shape
    if math.prod(shape) != D:
        raise ValueError(f"{_where(i, layer)} needs {D} values per sample, but gets shape {shape}")
    if len(shape) > 1:  # C order, as Affine's x.reshape(N, -1)
        x = b.node(i, layer, "Flatten", [x], axis=1)
    y = b.node(i, layer, "Gemm", [x, b.weight(i, layer, "W", W), b.weight(i, layer, "b", bias)])
    return y, (M,)  # Gemm's transA = transB = 0 (the defaults): x @ W + b, W as (in, out)


def _flatten(b: _Builder, i: int, layer: Flatten, x: str, shape: tuple[int, ...]):
    if len(shape) <= 1:
        return x, shape
    return b.node(i, layer, "Flatten", [x], axis=1), (math.prod(shape),)


def _elementwise(b: _Builder, i: int, layer: Layer, x: str, shape: tuple[int, ...]):
    return b.node(i, layer, type(layer).__name__, [x]), shape  # Relu, Sigmoid, Tanh


def _dropout(b: _Builder, i: int, layer: Dropout, x: str, shape: tuple[int, ...]):
    return x, shape  # inverted dropout: the identity at inference


def _batchnorm(b: _Builder, i: int, layer: BatchNormalization, x: str, shape: tuple[int, ...]):
    D = layer.params["gamma"].shape[0]
    if len(shape) not in (1, 3) or shape[0] != D:
        raise ValueError(
            f"{_where(i, layer)} needs ({D},) or ({D}, H, W) per sample, but gets shape {shape}"
        )
    inputs = [x] + [
        b.weight(i, layer, key, table[key])
        for table, key in (
            (layer.params, "gamma"),
            (layer.params, "beta"),
            (layer.buffers, "running_mean"),
            (layer.buffers, "running_var"),
        )
    ]
    return b.node(i, layer, "BatchNormalization", inputs, epsilon=float(layer.eps)), shape


def _convolution(b: _Builder, i: int, layer: Convolution, x: str, shape: tuple[int, ...]):
    C, H, W = _image_shape(i, layer, shape)
    FN, FC, FH, FW = layer.params["W"].shape
    if C != FC:
        raise ValueError(f"{_where(i, layer)} needs {FC} channels, but gets shape {shape}")
    s, p = layer.stride, layer.pad
    OH, OW = _window_out(i, layer, H, W, FH, FW, s, p)
    inputs = [
        x,
        b.weight(i, layer, "W", layer.params["W"]),
        b.weight(i, layer, "b", layer.params["b"]),
    ]
    y = b.node(
        i,
        layer,
        "Conv",
        inputs,
        kernel_shape=[FH, FW],
        strides=[s, s],
        pads=[p, p, p, p],  # [h_begin, w_begin, h_end, w_end]
        dilations=[1, 1],
        group=1,
    )
    return y, (FN, OH, OW)


def _pool(b: _Builder, i: int, layer: Pooling | AvgPooling, x: str, shape: tuple[int, ...]):
    C, H, W = _image_shape(i, layer, shape)
    ph, pw, s, p = layer.pool_h, layer.pool_w, layer.stride, layer.pad
    OH, OW = _window_out(i, layer, H, W, ph, pw, s, p)
    attrs = dict(kernel_shape=[ph, pw], strides=[s, s], pads=[p, p, p, p])
    if type(layer) is AvgPooling:
        y = b.node(i, layer, "AveragePool", [x], count_include_pad=1, **attrs)
        return y, (C, OH, OW)
    if p >= min(ph, pw):
        # windows of padding alone: ours give -inf, onnxruntime's MaxPool the lowest float
        raise ValueError(
            f"{_where(i, layer)} has pad {p} >= its window ({ph}, {pw}), so some windows hold "
            "padding only (output -inf), which ONNX MaxPool does not reproduce; use pad < window"
        )
    return b.node(i, layer, "MaxPool", [x], **attrs), (C, OH, OW)


TRANSLATIONS = {
    Affine: _affine,
    Flatten: _flatten,
    Relu: _elementwise,
    Sigmoid: _elementwise,
    Tanh: _elementwise,
    Dropout: _dropout,
    BatchNormalization: _batchnorm,
    Convolution: _convolution,
    Pooling: _pool,
    AvgPooling: _pool,
}


def _input_shape(model: Sequential, input_shape) -> tuple[int, ...]:
    shape = model.input_shape if input_shape is None else input_shape
    if shape is None:
        raise ValueError(
            f"the {type(model).__name__} has no input_shape; pass input_shape=(C, H, W) or (D,) "
            "(the shape of one sample)"
        )
    shape = tuple(shape)
    if not shape or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
        raise ValueError(f"input_shape must be whole numbers > 0, got {shape!r}")
    return tuple(int(n) for n in shape)


def plan_graph(model: Sequential, input_shape: tuple[int, ...] | None = None) -> GraphPlan:
    """The ONNX graph of ``model.predict`` followed by softmax, as plain nodes and arrays.

    ``input_shape`` (one sample's) defaults to ``model.input_shape``. Raises ValueError
    naming the layer (position, class, settings) that has no ONNX form or does not fit
    the shape before it, and for a model whose output is not (N, K) scores for softmax.
    """
    if not isinstance(model, Sequential):
        raise ValueError(f"model must be a scratchdl model (Sequential), got {type(model)}")
    if type(model.last_layer) is not SoftmaxWithLoss:
        raise ValueError(
            f"export writes class probabilities (softmax of the scores), but this model ends in "
            f"{type(model.last_layer).__name__}, not SoftmaxWithLoss"
        )
    shape = input_shape = _input_shape(model, input_shape)
    builder = _Builder(model)
    x = INPUT
    for i, layer in enumerate(model.layers):
        translate = TRANSLATIONS.get(type(layer))
        if translate is None:
            supported = ", ".join(cls.__name__ for cls in TRANSLATIONS)
            raise ValueError(
                f"{_where(i, layer)} of {len(model.layers)} has no ONNX translation; export "
                f"supports {supported}"
            )
        x, shape = translate(builder, i, layer, x, shape)
    if len(shape) != 1:
        raise ValueError(
            f"export needs a model that outputs (N, K) scores, but this one outputs (N, "
            f"{', '.join(map(str, shape))}); end it with an Affine"
        )
    nodes = builder.nodes
    if nodes:  # the last node's output is the graph's logits
        last = nodes[-1]
        nodes[-1] = Node(last.op_type, last.inputs, LOGITS, last.attrs)
    else:  # no layer computes anything (only Dropout): the scores are the input
        nodes.append(Node("Identity", (INPUT,), LOGITS))
    nodes.append(Node("Softmax", (LOGITS,), PROBABILITIES, {"axis": -1}))  # over the classes
    return GraphPlan(nodes, builder.initializers, input_shape, shape[0])
