"""The notebooks' exercises (scratchdl.exercises.check): every exercise accepts its solution
in notebooks/solutions/ and rejects a typical wrong answer, saying where in Japanese."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchdl.exercises import EXERCISES, check

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
# exercise name -> the name of its answer in notebooks/solutions/chXX.py
ANSWER = {
    "pick_greater": "pick_greater",
    "center_columns": "center_columns",
    "nand": "NAND",
    "xor": "XOR",
    "forward": "forward",
    "batch_accuracy": "batch_accuracy",
    "cross_entropy_error": "cross_entropy_error",
    "tangent_line": "tangent_line",
    "tanh_layer": "MyTanh",
    "identity_with_loss": "MyIdentityWithLoss",
    "rmsprop": "MyRMSprop",
    "batchnorm_running": "update_running",
    "conv_output_size": "conv_output_size",
    "avg_pooling": "avg_pooling",
    "conv_param_count": "conv_param_count",
    "shift_image": "shift_image",
}


def solution(name: str):
    chapter = EXERCISES[name][0]
    path = SOLUTIONS / f"ch0{chapter}.py"
    spec = importlib.util.spec_from_file_location(f"solution_ch0{chapter}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, ANSWER[name])


# -- typical wrong answers, one (or more) per exercise ------------------------------------


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def forward_without_second_sigmoid(n, x):
    z1 = sigmoid(x @ n["W1"] + n["b1"])
    return (z1 @ n["W2"] + n["b2"]) @ n["W3"] + n["b3"]


class TanhForgetsTheSquare:
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out)


class IdentityLossWithoutMean:
    def forward(self, x, t):
        self.diff = x - t
        return 0.5 * np.sum(self.diff**2)  # no division by the batch size

    def backward(self, dout=1):
        return self.diff


class RMSpropThatForgets:
    """Makes h anew at every update: right at the first step only."""

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.decay_rate = lr, decay_rate

    def update(self, params, grads):
        for key in params:
            h = (1 - self.decay_rate) * grads[key] ** 2
            params[key] -= self.lr * grads[key] / (np.sqrt(h) + 1e-7)


class AdaGradInstead:
    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.h = lr, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {k: np.zeros_like(v) for k, v in params.items()}
        for key in params:
            self.h[key] += grads[key] ** 2
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


def max_pooling(x, pool_h, pool_w, stride):
    N, C, H, W = x.shape
    OH, OW = (H - pool_h) // stride + 1, (W - pool_w) // stride + 1
    out = np.empty((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            window = x[:, :, i * stride : i * stride + pool_h, j * stride : j * stride + pool_w]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def center_in_place(X):
    X -= X.mean(axis=0)
    return X


def tangent_through_the_y_axis(f, x):
    d = (f(x + 1e-4) - f(x - 1e-4)) / 2e-4
    return lambda t: d * t + f(x)  # forgets - d * x


WRONG = {
    "pick_greater": [lambda X, threshold: X > threshold],
    "center_columns": [lambda X: X - X.mean(), center_in_place],
    "nand": [lambda x1, x2: int(x1 and x2)],
    "xor": [lambda x1, x2: int(x1 or x2)],
    "forward": [forward_without_second_sigmoid],
    "batch_accuracy": [lambda y, t: np.sum(np.argmax(y) == t) / len(t)],
    "cross_entropy_error": [
        lambda y, t: -np.sum(t * np.log(y + 1e-7)),  # no mean over the batch
        lambda y, t: -np.sum(t * np.log(y)) / y.shape[0],  # no delta: log(0)
    ],
    "tangent_line": [tangent_through_the_y_axis],
    "tanh_layer": [TanhForgetsTheSquare],
    "identity_with_loss": [IdentityLossWithoutMean],
    "rmsprop": [RMSpropThatForgets, AdaGradInstead],
    "batchnorm_running": [
        lambda x, mean, var, m: (m * mean + (1 - m) * x.mean(0), m * var + (1 - m) * x.std(0)),
        lambda x, mean, var, m: ((1 - m) * mean + m * x.mean(0), (1 - m) * var + m * x.var(0)),
    ],
    "conv_output_size": [
        lambda H, FH, S, P: (H + P - FH) // S + 1,
        lambda H, FH, S, P: (H + 2 * P - FH) // S,
    ],
    "avg_pooling": [max_pooling],
    "conv_param_count": [
        lambda C, FN, FH, FW: FN * C * FH * FW,
        lambda C, FN, FH, FW: FN * FH * FW + FN,
    ],
    "shift_image": [lambda img, dy, dx: np.roll(img, (dy, dx), axis=(0, 1))],
}


def test_every_exercise_has_a_solution_and_a_wrong_answer():
    assert set(EXERCISES) == set(ANSWER) == set(WRONG)
    chapters = [chapter for chapter, _ in EXERCISES.values()]
    assert chapters == sorted(chapters), "EXERCISES is in the book's order"
    assert {c: chapters.count(c) for c in range(1, 9)} == {c: 2 for c in range(1, 9)}


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_solution_is_accepted(name, capsys):
    assert check(name, solution(name)).ok is True
    out = capsys.readouterr().out
    assert out.startswith("✔") and "正解です" in out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log(0) in an answer without delta
@pytest.mark.parametrize(
    "name, wrong",
    [(name, w) for name, answers in WRONG.items() for w in answers],
    ids=[f"{name}-{i}" for name, answers in WRONG.items() for i in range(len(answers))],
)
def test_a_typical_wrong_answer_is_rejected_with_a_hint(name, wrong, capsys):
    assert check(name, wrong).ok is False
    out = capsys.readouterr().out
    assert out.startswith("✘") and "ヒント: " in out
    assert "正解です" not in out


def test_the_first_difference_is_shown_with_both_values(capsys):
    check("conv_output_size", WRONG["conv_output_size"][0])
    out = capsys.readouterr().out
    # the book's first example: H = 4, FH = 3, S = 1, P = 1 gives 4; forgetting the 2 gives 3
    assert "conv_output_size(4, 3, 1, 1)が違います" in out
    assert "正しくは 4、あなたの答えは 3 です" in out
    check("shift_image", WRONG["shift_image"][0])
    out = capsys.readouterr().out
    assert "位置 (0, 0) で正しくは 0、あなたの答えは" in out and "np.roll" in out


def test_a_wrong_shape_is_named(capsys):
    check("pick_greater", WRONG["pick_greater"][0])
    out = capsys.readouterr().out
    assert "形が違います" in out and "正しくは (3,)、あなたの答えは (3, 2) です" in out


def test_a_later_step_gets_its_own_hint(capsys):
    check("rmsprop", RMSpropThatForgets)
    out = capsys.readouterr().out
    assert "2 回目の update の後" in out and "前の値を使い続けます" in out


def test_writing_into_the_input_is_reported(capsys):
    assert not check("center_columns", center_in_place)
    assert "書き換えられています" in capsys.readouterr().out


def test_an_unfinished_answer_and_an_answer_that_raises_are_reported(capsys):
    def unfinished(*args):
        raise NotImplementedError

    assert not check("nand", unfinished)
    assert "まだ書かれていません" in capsys.readouterr().out

    def broken(X, threshold):
        return X[threshold, threshold, threshold]

    assert not check("pick_greater", broken)
    out = capsys.readouterr().out
    assert "エラーを出しました: IndexError" in out and "ヒント: " in out

    assert not check("nand", lambda x1, x2: None)
    assert "値が返っていません" in capsys.readouterr().out


def test_an_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown exercise 'momentun'; choose one of: .*rmsprop"):
        check("momentun", object)


def test_a_verdict_does_not_change_from_run_to_run(capsys):
    for _ in range(2):
        check("avg_pooling", max_pooling)
    first, second = capsys.readouterr().out.split("✘")[1:]
    assert first == second


def test_importing_the_exercises_loads_numpy_only():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import scratchdl.exercises\n"
        "top = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "std = set(sys.stdlib_module_names)\n"
        "print(sorted(t for t in top - std if not t.startswith('_') and t not in "
        "{'scratchdl', 'numpy', 'cython_runtime'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
