"""第1章の練習問題の解答例（ノートブック ch01_python_numpy.ipynb）。"""

import numpy as np


def pick_greater(X, threshold):
    return X[X > threshold]  # X > threshold は True/False の配列。True の要素だけを取り出す


def center_columns(X):
    return X - X.mean(axis=0)  # 形 (列の数,) の平均が、ブロードキャストで各行から引かれる


if __name__ == "__main__":
    from scratchdl.exercises import check

    check("pick_greater", pick_greater)
    check("center_columns", center_columns)
    print(center_columns(np.array([[1.0, 2.0], [3.0, 6.0]])))
