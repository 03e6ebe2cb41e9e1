"""The convolution layer (ch7.4): im2col, then one matrix product."""

from __future__ import annotations

import numpy as np

from .. import conv_bands
from ..checks import check_positive_int
from .base import Layer, as_input, as_param, check_ndim


class Convolution(Layer):
    """2-D convolution (cross-correlation) by im2col, as in the book:

        col = im2col(x, FH, FW, stride, pad)        # (N*OH*OW, C*FH*FW)
        out = col @ W.reshape(FN, -1).T + b          # (N*OH*OW, FN) -> (N, FN, OH, OW)
        dW  = dout_t.T @ col;  db = dout_t.sum(0);  dx = col2im(dout_t @ W_col)

    ``conv_bands`` computes exactly these products, band by band, on images kept batch-last
    in memory (the output is an (N, FN, OH, OW) view of (FN, OH, OW, N) memory); the book's
    ``im2col`` / ``col2im`` are the reference it is tested against.
    Shape: x (N, C, H, W) -> (N, FN, OH, OW), OH = (H + 2*pad - FH) / stride + 1;
    W (FN, C, FH, FW); b (FN,).
    """

    per_sample = True

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        W, b = as_param(self, "W", W), as_param(self, "b", b)
        if W.ndim != 4 or b.shape != (W.shape[0],):
            raise ValueError(
                f"Convolution needs W (FN, C, FH, FW) and b (FN,), got {W.shape} and {b.shape}"
            )
        self.params = {"W": W, "b": b}
        self.stride = check_positive_int("stride", stride)
        self.pad = check_positive_int("pad", pad, allow_zero=True)
        # the padded input (backward rebuilds the columns from it) and reused buffers
        self.work = conv_bands.Workspace()

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = self.checked_input(x)
        W, b = self.params["W"], self.params["b"]
        return conv_bands.convolve(x, W, b, self.stride, self.pad, self.work)

    def checked_input(self, x) -> np.ndarray:
        """``x`` as an array this layer takes, or a ValueError that names what is wrong."""
        x = as_input(self, x)
        W = self.params["W"]
        check_ndim(self, x, 4, "(N, C, H, W)")
        if x.shape[1] != W.shape[1]:
            raise ValueError(
                f"Convolution expects (N, {W.shape[1]}, H, W) input for W of shape {W.shape}, "
                f"got {x.shape}"
            )
        return x

    def backward_params(self, dout: np.ndarray) -> None:
        if self.work.xp is None:
            raise RuntimeError("Convolution.backward needs a forward pass first")
        dW, db = conv_bands.filter_gradient(dout, self.params["W"], self.stride, self.work)
        self.grads = {"W": dW, "b": db}

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.backward_params(dout)
        return conv_bands.input_gradient(dout, self.params["W"], self.stride, self.pad, self.work)

    def twin(self) -> Convolution:
        twin = super().twin()
        twin.work = conv_bands.Workspace()  # buffers of its own: parts run at the same time
        twin.work.chunk_bytes = self.work.chunk_bytes
        twin.work.shared_chunk_bytes = self.work.shared_chunk_bytes
        return twin

    def extra_repr(self) -> str:
        FN, C, FH, FW = self.params["W"].shape
        return f"{C}, {FN}, kernel=({FH}, {FW}), stride={self.stride}, pad={self.pad}"
