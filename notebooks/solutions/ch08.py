"""第8章の練習問題の解答例（ノートブック ch08_deep_learning.ipynb）。"""

import numpy as np


def conv_param_count(C, FN, FH, FW):
    return FN * C * FH * FW + FN  # 重み (FN, C, FH, FW) とバイアス (FN,)


def shift_image(img, dy, dx):
    H, W = img.shape
    out = np.zeros_like(img)  # 空いたところは 0（背景）
    for y in range(H):
        for x in range(W):
            if 0 <= y - dy < H and 0 <= x - dx < W:
                out[y, x] = img[y - dy, x - dx]
    return out


if __name__ == "__main__":
    from scratchdl.exercises import check

    check("conv_param_count", conv_param_count)
    check("shift_image", shift_image)
