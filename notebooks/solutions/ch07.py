"""第7章の練習問題の解答例（ノートブック ch07_cnn.ipynb）。"""

import numpy as np


def conv_output_size(H, FH, stride, pad):
    return (H + 2 * pad - FH) // stride + 1  # 本書の式 7.1


def avg_pooling(x, pool_h, pool_w, stride):
    N, C, H, W = x.shape
    OH = (H - pool_h) // stride + 1
    OW = (W - pool_w) // stride + 1
    out = np.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            window = x[:, :, i * stride : i * stride + pool_h, j * stride : j * stride + pool_w]
            out[:, :, i, j] = window.mean(axis=(2, 3))
    return out


if __name__ == "__main__":
    from scratchdl.exercises import check

    check("conv_output_size", conv_output_size)
    check("avg_pooling", avg_pooling)
