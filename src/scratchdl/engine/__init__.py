"""What makes the layers fast, one floor below them: it imports none of them.

- ``bands``: batch-last images, the book's columns a band of output rows at a time, the one
  padding kernel, the one col2im add, and the memory reused from step to step;
- ``conv``: ``ConvEngine``, a convolution layer's fast path (forward, filter and input
  gradients, band by band);
- ``pool``: max pooling with the window cell of each maximum, and its backward pass;
- ``fused``: ``FusedConv``, Convolution -> ReLU (-> max pooling) in one pass over the bands;
- ``threads``: the thread count, and a batch's leading layers run in parts on threads;
- ``winograd``: Winograd F(2x2, 3x3) and F(4x4, 3x3), fewer products for 3x3 convolutions;
- ``choice``: which of im2col-GEMM and Winograd computes each pass (``$SCRATCHDL_CONV``,
  ``set_conv_algorithm``, ``conv_algorithm``).

A layer holds an engine object and asks it; the engine owns its state (its buffers, the
padded input its backward reads), and nobody else writes into it.
"""

from .bands import conv_output_size
from .choice import conv_algorithm, get_conv_algorithm, set_conv_algorithm
from .conv import ConvEngine
from .fused import FusedConv, fusable_pool
from .pool import max_pool, max_pool_backward
from .threads import BatchParts, get_num_threads, set_num_threads

__all__ = [
    "BatchParts",
    "ConvEngine",
    "FusedConv",
    "conv_algorithm",
    "conv_output_size",
    "fusable_pool",
    "get_conv_algorithm",
    "get_num_threads",
    "max_pool",
    "max_pool_backward",
    "set_conv_algorithm",
    "set_num_threads",
]
