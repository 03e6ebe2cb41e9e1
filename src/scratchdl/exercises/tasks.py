"""The exercises behind ``scratchdl.exercises.check``: each runs the reader's answer on fixed
inputs beside the right answer (the library's, where it has one) and raises ``Mismatch`` at
the first difference, with a hint for the mistake that difference points to.

Inputs come from fixed seeds, so a verdict never changes from one run to the next.
"""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..gradient import numerical_diff
from ..layers import AvgPooling, BatchNormalization, IdentityWithLoss, Tanh
from ..optimizers import RMSprop
from .checks import Mismatch, same, task, unchanged


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- ch01: Python and NumPy ---------------------------------------------------------------


@task(
    1,
    "条件に合う要素を取り出す",
    ("X > 15 は True/False の配列です。X[X > 15] で True の要素だけが取り出せます。"),
)
def pick_greater(f) -> str:
    book = np.array([[51, 55], [14, 19], [0, 4]])
    for X, threshold in ((book, 15), (rng().integers(0, 100, (4, 5)), 50)):
        same(f"pick_greater(X, {threshold}) の結果", X[X > threshold], f(X.copy(), threshold))
    return "X[X > threshold] と同じ要素が、同じ順に取り出せています。"


@task(
    1,
    "列ごとに平均を引く",
    (
        "列ごとの平均は X.mean(axis=0) です。"
        "形 (列の数,) の配列が、ブロードキャストで各行から引かれます。"
    ),
)
def center_columns(f) -> str:
    for X in (np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]), rng().normal(3, 2, (5, 4))):
        given = X.copy()
        same("center_columns(X) の結果", X - X.mean(axis=0), f(given))
        unchanged("X", X, given)
    return "各列からその列の平均が引かれ、どの列も平均 0 になっています。"


# -- ch02: perceptrons --------------------------------------------------------------------


def truth_table(f, name: str, table: tuple[int, ...]) -> str:
    for (x1, x2), want in zip(((0, 0), (1, 0), (0, 1), (1, 1)), table, strict=True):
        same(f"{name}({x1}, {x2}) の出力", want, f(x1, x2))
    return f"真理値表の 4 行（{' '.join(map(str, table))}）がすべて合っています。"


@task(
    2,
    "NAND ゲート",
    "AND の重みとバイアスの符号を反対にすると NAND です（本書: w = (−0.5, −0.5)、b = 0.7）。",
)
def nand(f) -> str:
    return truth_table(f, "NAND", (1, 1, 1, 0))


@task(2, "XOR ゲート", "XOR は 2 層のパーセプトロン AND(NAND(x1, x2), OR(x1, x2)) です。")
def xor(f) -> str:
    return truth_table(f, "XOR", (0, 1, 1, 0))


# -- ch03: neural networks ----------------------------------------------------------------


def forward_3layer(network: dict, x: np.ndarray) -> np.ndarray:
    z1 = F.sigmoid(x @ network["W1"] + network["b1"])
    z2 = F.sigmoid(z1 @ network["W2"] + network["b2"])
    return F.identity(z2 @ network["W3"] + network["b3"])


@task(
    3,
    "3 層ネットワークの順伝播",
    ("各層は a = x·W + b、中間層はシグモイド関数、出力層は恒等関数です（本書 3.4.3）。"),
)
def forward(f) -> str:
    book = {
        "W1": np.array([[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]]),
        "b1": np.array([0.1, 0.2, 0.3]),
        "W2": np.array([[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]]),
        "b2": np.array([0.1, 0.2]),
        "W3": np.array([[0.1, 0.3], [0.2, 0.4]]),
        "b3": np.array([0.1, 0.2]),
    }
    g = rng()
    sizes = (4, 5, 3, 2)
    other = {}
    for i in range(3):
        other[f"W{i + 1}"] = g.normal(size=sizes[i : i + 2])
        other[f"b{i + 1}"] = g.normal(size=sizes[i + 1])
    cases = (
        (book, np.array([1.0, 0.5]), "本書の重み"),
        (other, g.normal(size=(3, 4)), "3 件のバッチ"),
    )
    for network, x, label in cases:
        same(f"{label}での forward(network, x) の出力", forward_3layer(network, x), f(network, x))
    return "本書の例 [0.31682708 0.69627909] も、バッチの入力も同じ出力です。"


@task(
    3,
    "バッチの認識精度",
    (
        "np.argmax(y, axis=1) で各行（1 枚ずつ）の最大のクラスを選びます。"
        "axis を忘れると配列全体の最大になります。"
    ),
)
def batch_accuracy(f) -> str:
    g = rng()
    y = g.random((20, 10))
    t = np.where(np.arange(20) < 12, y.argmax(axis=1), g.integers(0, 10, 20))
    same("batch_accuracy(y, t) の値", np.mean(y.argmax(axis=1) == t), f(y, t))
    return "各行で確率が最大のクラスを選び、正解の割合が正しく求められています。"


# -- ch04: learning -----------------------------------------------------------------------


@task(
    4,
    "バッチ対応の交差エントロピー誤差",
    (
        "−Σ t log(y + delta) を、"
        "バッチの大きさ N で割って平均にします。"
        "1 次元の入力は (1, K) に reshape します。"
    ),
)
def cross_entropy_error(f) -> str:
    t = np.eye(10)[[2, 2]]
    y = np.array(
        [
            [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0],
            [0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0],
        ]
    )
    same("2 件のバッチの交差エントロピー誤差", F.cross_entropy_error(y, t), f(y, t))
    y0 = np.array([[0.0, 1.0], [0.5, 0.5]])  # the right class of the first row gets 0
    t0 = np.eye(2)[[0, 0]]
    same(
        "正解クラスの確率が 0 のときの値",
        F.cross_entropy_error(y0, t0),
        f(y0, t0),
        hint="log(0) は −∞ です。本書と同じく微小な値 delta = 1e-7 を足してから log をとります。",
    )
    same("1 件だけ（1 次元の y と t）のときの値", F.cross_entropy_error(y[0], t[0]), f(y[0], t[0]))
    return "バッチの平均、確率 0 の扱い（delta）、1 件だけの入力のどれも合っています。"


@task(4, "接線", "接線は点 (x, f(x)) を通る傾き d の直線です: y = d·t + (f(x) − d·x)。")
def tangent_line(f) -> str:
    def function_1(x):
        return 0.01 * x**2 + 0.1 * x

    t = np.array([0.0, 5.0, 20.0])
    for x in (5.0, 10.0):
        d = numerical_diff(function_1, x)
        line = f(function_1, x)
        if not callable(line):
            raise Mismatch("tangent_line は関数（lambda t: ...）を返します。", (), None)
        # the reader may take the slope by any difference quotient: 1e-5 leaves room for that
        same(f"x = {x:g} での接線の値", d * t + function_1(x) - d * x, line(t), rtol=1e-5)
    return "x = 5 と x = 10 の接線が、t = 0, 5, 20 で正しい値になっています。"


# -- ch05: backpropagation ----------------------------------------------------------------


@task(5, "tanh レイヤ", "順伝播で出力 y を覚えておき、逆伝播は dout · (1 − y²) です。")
def tanh_layer(cls) -> str:
    g = rng()
    x, dout = g.normal(size=(3, 4)), g.normal(size=(3, 4))
    ours, layer = Tanh(), cls()
    same("順伝播 forward(x) の出力", ours.forward(x), layer.forward(x.copy()))
    given = dout.copy()
    same(
        "逆伝播 backward(dout) の出力",
        ours.backward(dout),
        layer.backward(given),
        hint="tanh の微分は 1 − y²（y は順伝播の出力）です。dout にそれを掛けます。",
    )
    unchanged("dout", dout, given)
    return "順伝播 y = tanh(x) と逆伝播 dout · (1 − y²) が合っています。"


@task(
    5,
    "恒等関数と 2 乗和誤差のレイヤ",
    ("損失は 1/2 · Σ(y − t)² / N、逆伝播は (y − t) / N です（本書 5.6.3）。"),
)
def identity_with_loss(cls) -> str:
    g = rng()
    x, t = g.normal(size=(4, 3)), g.normal(size=(4, 3))
    ours, layer = IdentityWithLoss(), cls()
    same(
        "順伝播 forward(x, t) の損失",
        ours.forward(x, t),
        layer.forward(x.copy(), t),
        hint="損失は 1/2 · Σ(y − t)² をバッチの大きさ N で割った平均です。",
    )
    same(
        "逆伝播 backward() の出力",
        ours.backward(),
        layer.backward(),
        hint="逆伝播は (y − t) / N です。Softmax-with-Loss と同じく、N で割るのを忘れずに。",
    )
    return "損失 1/2 · Σ(y − t)² / N と、逆伝播 (y − t) / N が合っています。"


# -- ch06: learning techniques ------------------------------------------------------------


@task(6, "RMSprop", ("h ← ρh + (1 − ρ) g ⊙ g、W ← W − η g / (√h + 1e-7) です。"))
def rmsprop(cls) -> str:
    g = rng()
    params = {"W": g.normal(size=(3, 4)), "b": g.normal(size=4)}
    mine = {k: v.copy() for k, v in params.items()}
    ours, optimizer = RMSprop(lr=0.1, decay_rate=0.9), cls(lr=0.1, decay_rate=0.9)
    for step in (1, 2, 3):
        grads = {k: g.normal(size=v.shape) for k, v in params.items()}
        ours.update(params, grads)
        optimizer.update(mine, {k: v.copy() for k, v in grads.items()})
        hint = (
            None if step == 1 else "h は最初の update で 0 から作り、その後は前の値を使い続けます。"
        )
        for key in params:
            same(f"{step} 回目の update の後の params['{key}']", params[key], mine[key], hint=hint)
    return "3 回の update で W と b が RMSprop の式どおりに更新されています。"


@task(
    6,
    "Batch Normalization の移動平均",
    "本書の式: running_mean = momentum × running_mean + (1 − momentum) × μ（分散も同じ）。",
)
def batchnorm_running(f) -> str:
    g = rng()
    D = 4
    ours = BatchNormalization(np.ones(D), np.zeros(D), momentum=0.9)
    mean, var = np.zeros(D), np.ones(D)
    for step in (1, 2, 3):
        x = g.normal(3.0, 2.0, size=(50, D))
        ours.forward(x, train=True)
        got = f(x.copy(), mean.copy(), var.copy(), 0.9)
        if not isinstance(got, tuple) or len(got) != 2:
            raise Mismatch("(新しい running_mean, 新しい running_var) の組を返します。", (), None)
        mean, var = got
        same(f"{step} 回目の running_mean", ours.buffers["running_mean"], mean)
        hint = "分散は x.var(axis=0) です（標準偏差ではありません）。"
        same(f"{step} 回目の running_var", ours.buffers["running_var"], var, hint=hint)
    return "3 回のミニバッチで、平均と分散の移動平均が本書の式どおりに更新されています。"


# -- ch07: convolution --------------------------------------------------------------------


@task(
    7,
    "畳み込みの出力サイズ",
    ("OH = (H + 2P − FH) / S + 1 です。パディングは上下（左右）の両側に入るので 2P です。"),
)
def conv_output_size(f) -> str:
    # (H, FH, stride, pad): the book's three examples, then 28x28 images as in SimpleConvNet
    for H, FH, S, P in ((4, 3, 1, 1), (7, 3, 2, 0), (28, 5, 3, 2), (31, 5, 3, 2), (28, 5, 1, 0)):
        same(f"conv_output_size({H}, {FH}, {S}, {P})", (H + 2 * P - FH) // S + 1, f(H, FH, S, P))
    return "本書の 3 つの例と 28×28 の例で、出力サイズが式 (H + 2P − FH) / S + 1 のとおりです。"


@task(
    7,
    "Average プーリング",
    "窓の平均は np.mean です。出力の位置 (i, j) の窓は x[:, :, i*S : i*S+FH, j*S : j*S+FW] です。",
)
def avg_pooling(f) -> str:
    g = rng()
    for shape, size, stride in (((2, 3, 4, 4), 2, 2), ((1, 2, 5, 5), 3, 1)):
        x = g.normal(size=shape)
        given = x.copy()
        want = AvgPooling(size, size, stride=stride).forward(x)
        same(
            f"形 {shape}・窓 {size}×{size}・ストライド {stride} の出力",
            want,
            f(given, size, size, stride),
        )
        unchanged("x", x, given)
    return "どの窓でも平均がとれ、出力の形 (N, C, OH, OW) も合っています。"


# -- ch08: deep learning ------------------------------------------------------------------


@task(
    8,
    "畳み込み層のパラメータ数",
    ("フィルター 1 枚の重みは C × FH × FW 個、それが FN 枚と、バイアスが FN 個です。"),
)
def conv_param_count(f) -> str:
    for C, FN, FH, FW in ((1, 16, 3, 3), (16, 32, 3, 3), (3, 30, 5, 5)):
        same(f"conv_param_count({C}, {FN}, {FH}, {FW})", FN * C * FH * FW + FN, f(C, FN, FH, FW))
    return "重み FN × C × FH × FW 個とバイアス FN 個の合計が合っています。"


def shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    H, W = img.shape
    out = np.zeros_like(img)
    out[max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = img[
        max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return out


@task(
    8,
    "画像の平行移動（Data Augmentation）",
    "新しい 0 の配列を作り、ずらした位置に元の画像の重なる部分をコピーします。",
)
def shift_image(f) -> str:
    img = rng().random((6, 6))
    for dy, dx in ((1, 2), (-2, 0), (0, -3), (0, 0)):
        given = img.copy()
        same(
            f"shift_image(img, {dy}, {dx}) の結果",
            shifted(img, dy, dx),
            f(given, dy, dx),
            hint="np.roll ははみ出した画素を反対側に戻します。空いたところは 0（背景）で埋めます。",
        )
        unchanged("img", img, given)
    return "4 通りのずらし方で、画像が正しく動き、空いたところが 0 になっています。"
