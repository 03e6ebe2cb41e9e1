"""The convolution layer (ch7.4): im2col, then one matrix product."""

from __future__ import annotations

import numpy as np

from ..columns import col2im, conv_output_size, im2col
from ..engine import ConvEngine
from ..support.checks import check_positive_int
from .base import Layer, as_input, as_param, check_ndim


class Convolution(Layer):
    """2-D convolution (cross-correlation) by im2col, as in the book:

        col = im2col(x, FH, FW, stride, pad)        # (N*OH*OW, C*FH*FW)
        out = col @ W.reshape(FN, -1).T + b          # (N*OH*OW, FN) -> (N, FN, OH, OW)
        dW  = dout_t.T @ col;  db = dout_t.sum(0);  dx = col2im(dout_t @ W_col)

    ``reference = True`` runs exactly this (``book_forward``, ``book_backward_params``,
    ``book_backward``). By default ``self.engine`` (``engine.ConvEngine``) computes the same
    products band by band on images kept batch-last in memory (the output is an
    (N, FN, OH, OW) view of (FN, OH, OW, N) memory); the tests hold it to the book's path.
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
        self.engine = ConvEngine()  # the fast path; it keeps the padded input for backward
        self.col: np.ndarray | None = None  # the book's path: dW = dout_t.T @ col
        self.x_shape: tuple | None = None  # the book's path: col2im rebuilds this shape

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        x = self.checked_input(x)
        if self.reference:
            return self.book_forward(x)
        self.col = None  # the book's columns of an earlier pass: tens of MB, not needed now
        W, b = self.params["W"], self.params["b"]
        return self.engine.convolve(x, W, b, self.stride, self.pad)

    def backward_params(self, dout: np.ndarray) -> None:
        if self.reference:
            self.book_backward_params(dout)
        else:
            dW, db = self.engine.filter_gradient(dout, self.params["W"], self.stride)
            self.grads = {"W": dW, "b": db}

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.reference:
            return self.book_backward(dout)
        self.backward_params(dout)
        return self.engine.input_gradient(dout, self.params["W"], self.stride, self.pad)

    # -- the book's path -------------------------------------------------------------------

    def book_forward(self, x: np.ndarray) -> np.ndarray:
        """The book's forward pass: im2col, one product, reshape."""
        W, b = self.params["W"], self.params["b"]
        FN, C, FH, FW = W.shape
        N, C, H, W_in = x.shape
        OH = conv_output_size(H, FH, self.stride, self.pad)
        OW = conv_output_size(W_in, FW, self.stride, self.pad)
        col = im2col(x, FH, FW, self.stride, self.pad)  # (N*OH*OW, C*FH*FW)
        out = col @ W.reshape(FN, -1).T + b  # (N*OH*OW, FN)
        self.col, self.x_shape = col, x.shape
        return out.reshape(N, OH, OW, FN).transpose(0, 3, 1, 2)

    def book_backward_params(self, dout: np.ndarray) -> None:
        """The book's dW and db: dout laid out as im2col's rows, times the columns."""
        if self.col is None:
            raise RuntimeError("Convolution.backward needs a forward pass first")
        FN = self.params["W"].shape[0]
        dout_t = dout.transpose(0, 2, 3, 1).reshape(-1, FN)  # (N*OH*OW, FN)
        dW = (self.col.T @ dout_t).T.reshape(self.params["W"].shape)
        self.grads = {"W": dW, "b": dout_t.sum(axis=0)}

    def book_backward(self, dout: np.ndarray) -> np.ndarray:
        """The book's backward pass: dcol = dout_t @ W_col, then col2im."""
        self.book_backward_params(dout)
        W = self.params["W"]
        FN, C, FH, FW = W.shape
        dcol = dout.transpose(0, 2, 3, 1).reshape(-1, FN) @ W.reshape(FN, -1)
        return col2im(dcol, self.x_shape, FH, FW, self.stride, self.pad)

    # --------------------------------------------------------------------------------------

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

    def twin(self) -> Convolution:
        twin = super().twin()
        twin.engine = self.engine.twin()  # memory of its own: parts run at the same time
        return twin

    def extra_repr(self) -> str:
        FN, C, FH, FW = self.params["W"].shape
        return f"{C}, {FN}, kernel=({FH}, {FW}), stride={self.stride}, pad={self.pad}"
