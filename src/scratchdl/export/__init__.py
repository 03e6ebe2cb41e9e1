"""Models that leave scratchdl: ONNX files for inference, checked against onnxruntime.

``to_onnx(model, path)`` writes a model (every layer scratchdl has, in inference form) with
its softmax output; ``scratchdl export MODEL --format onnx`` does it from the command line.
Importing this package needs numpy only: onnx is imported when a file is made.
"""

from .onnx_graph import GraphPlan, plan_graph
from .onnx_model import DEFAULT_OPSET, MIN_OPSET, ir_version_for, onnx_model, to_onnx

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "GraphPlan",
    "ir_version_for",
    "onnx_model",
    "plan_graph",
    "to_onnx",
]
