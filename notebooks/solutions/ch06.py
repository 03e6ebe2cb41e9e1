"""第6章の練習問題の解答例（ノートブック ch06_learning_techniques.ipynb）。"""

import numpy as np


class MyRMSprop:
    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        if self.h is None:  # 最初の 1 回だけ 0 で作る
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


def update_running(x, running_mean, running_var, momentum=0.9):
    mu = x.mean(axis=0)  # ミニバッチの平均
    var = x.var(axis=0)  # ミニバッチの分散
    running_mean = momentum * running_mean + (1 - momentum) * mu
    running_var = momentum * running_var + (1 - momentum) * var
    return running_mean, running_var


if __name__ == "__main__":
    from scratchdl.exercises import check

    check("rmsprop", MyRMSprop)
    check("batchnorm_running", update_running)
