"""第3章の練習問題の解答例（ノートブック ch03_neural_network.ipynb）。"""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def forward(network, x):
    W1, W2, W3 = network["W1"], network["W2"], network["W3"]
    b1, b2, b3 = network["b1"], network["b2"], network["b3"]
    z1 = sigmoid(np.dot(x, W1) + b1)
    z2 = sigmoid(np.dot(z1, W2) + b2)
    return np.dot(z2, W3) + b3  # 出力層は恒等関数


def batch_accuracy(y, t):
    p = np.argmax(y, axis=1)  # 各行（1 枚ずつ）で確率が最大のクラス
    return np.sum(p == t) / len(t)


if __name__ == "__main__":
    from scratchdl.exercises import check

    check("forward", forward)
    check("batch_accuracy", batch_accuracy)
