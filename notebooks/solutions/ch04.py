"""第4章の練習問題の解答例（ノートブック ch04_learning.ipynb）。"""

import numpy as np


def cross_entropy_error(y, t):
    if y.ndim == 1:  # 1 件だけのときも (1, K) のバッチとして扱う
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    batch_size = y.shape[0]
    delta = 1e-7  # log(0) = -inf にならないように
    return -np.sum(t * np.log(y + delta)) / batch_size


def numerical_diff(f, x):
    h = 1e-4
    return (f(x + h) - f(x - h)) / (2 * h)


def tangent_line(f, x):
    d = numerical_diff(f, x)  # 傾き
    y = f(x) - d * x  # 点 (x, f(x)) を通るための切片
    return lambda t: d * t + y


if __name__ == "__main__":
    from scratchdl.exercises import check

    check("cross_entropy_error", cross_entropy_error)
    check("tangent_line", tangent_line)
