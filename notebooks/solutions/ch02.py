"""第2章の練習問題の解答例（ノートブック ch02_perceptron.ipynb）。"""

import numpy as np


def NAND(x1, x2):
    x = np.array([x1, x2])
    w = np.array([-0.5, -0.5])  # AND の重みとバイアスの符号を反対にする
    b = 0.7
    tmp = np.sum(w * x) + b
    return 0 if tmp <= 0 else 1


def OR(x1, x2):
    x = np.array([x1, x2])
    w = np.array([0.5, 0.5])
    b = -0.2
    return 0 if np.sum(w * x) + b <= 0 else 1


def AND(x1, x2):
    x = np.array([x1, x2])
    w = np.array([0.5, 0.5])
    b = -0.7
    return 0 if np.sum(w * x) + b <= 0 else 1


def XOR(x1, x2):
    s1 = NAND(x1, x2)  # 第 1 層
    s2 = OR(x1, x2)
    return AND(s1, s2)  # 第 2 層


if __name__ == "__main__":
    from scratchdl.exercises import check

    check("nand", NAND)
    check("xor", XOR)
