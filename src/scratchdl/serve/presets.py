"""The book's chapter 6 experiments as presets of the Train tab: several runs, one figure.

A preset is shared settings (``base``) and the runs that differ in one of them (``runs``:
label -> changes). ``POST /api/jobs {"preset": ID, "settings": {...}}`` starts every run with
``{**base, **settings, **changes}``: a client may change what the runs share (a smaller data
set, fewer epochs), never what the figure compares. The settings are the book's (the scripts
of ch06 and ``scratchdl experiment``'s), except that the Trainer counts whole epochs where
the book's scripts count iterations (fig. 6-9: 4 epochs of 469 batches of 128 are 1876
iterations, the book's 2000).
"""

from __future__ import annotations

from .safety import ClientError

# the book's 5-layer ReLU network of figs. 6-9 and 6-15 (784 - 100 x 4 - 10)
FIVE_LAYERS = {"model": "mlp", "hidden_layers": 4, "hidden_size": 100, "dataset": "mnist"}
# the 7-layer network that overfits 300 images (figs. 6-20 to 6-23)
OVERFIT = {
    "model": "mlp",
    "hidden_layers": 6,
    "hidden_size": 100,
    "dataset": "mnist",
    "train_size": 300,
    "optimizer": "sgd",
    "lr": 0.01,
    "batch_size": 100,
    "init": "he",
}

PRESETS = {
    "fig6-9": {
        "figure": "6-9",
        "title": {"en": "Four optimizers", "ja": "4 つの最適化手法"},
        "text": {
            "en": "SGD, Momentum, AdaGrad and Adam train the same 5-layer network from the "
            "same initial weights. SGD learns the slowest.",
            "ja": "SGD、Momentum、AdaGrad、Adam で同じ 5 層のネットワークを、同じ重みの初期値"
            "から学習します。SGD の学習がもっとも遅くなります。",
        },
        "base": {**FIVE_LAYERS, "init": "he", "batch_size": 128, "epochs": 4},
        "runs": {
            "SGD": {"optimizer": "sgd", "lr": 0.01},
            "Momentum": {"optimizer": "momentum", "lr": 0.01},
            "AdaGrad": {"optimizer": "adagrad", "lr": 0.01},
            "Adam": {"optimizer": "adam", "lr": 0.001},
        },
    },
    "fig6-14": {
        "figure": "6-14, 6-15",
        "title": {"en": "Initial weights", "ja": "重みの初期値"},
        "text": {
            "en": "The same network trained by SGD from weights of std 0.01, Xavier's and He's "
            "initial values. Watch the activation histograms: with std 0.01 they shrink "
            "towards 0 layer by layer, and the network does not learn.",
            "ja": "同じネットワークを、標準偏差 0.01、Xavier の初期値、He の初期値から SGD で"
            "学習します。アクティベーションの分布を見てください。標準偏差 0.01 では層を"
            "進むごとに 0 に偏り、学習が進みません。",
        },
        "base": {**FIVE_LAYERS, "optimizer": "sgd", "lr": 0.01, "batch_size": 128, "epochs": 4},
        "runs": {
            "std 0.01": {"init": "std", "init_std": 0.01},
            "Xavier": {"init": "xavier"},
            "He": {"init": "he"},
        },
    },
    "fig6-19": {
        "figure": "6-19",
        "title": {"en": "Batch Normalization", "ja": "Batch Normalization"},
        "text": {
            "en": "5 hidden layers, weights of std 0.01, 1000 training images: without Batch "
            "Normalization the network stays at chance; with it, it learns.",
            "ja": "隠れ層 5 層、重みの標準偏差 0.01、訓練データ 1000 枚。Batch Normalization "
            "なしでは学習が進まず、ありでは学習が進みます。",
        },
        "base": {
            "model": "mlp",
            "hidden_layers": 5,
            "hidden_size": 100,
            "dataset": "mnist",
            "train_size": 1000,
            "optimizer": "sgd",
            "lr": 0.01,
            "batch_size": 100,
            "epochs": 20,
            "init": "std",
            "init_std": 0.01,
        },
        "runs": {
            "with Batch Norm": {"batchnorm": True},
            "without Batch Norm": {"batchnorm": False},
        },
    },
    "fig6-20": {
        "figure": "6-20, 6-21",
        "title": {"en": "Overfitting and weight decay", "ja": "過学習と Weight decay"},
        "text": {
            "en": "300 training images and a 7-layer network: without weight decay the "
            "training accuracy reaches 100 % while the test accuracy stays far below "
            "(overfitting); with λ = 0.1 the gap narrows.",
            "ja": "訓練データ 300 枚と 7 層のネットワーク。Weight decay なしでは訓練データの"
            "認識精度が 100 % に達し、テストデータとの差が開きます（過学習）。λ = 0.1 で"
            "その差が縮まります。",
        },
        "base": {**OVERFIT, "epochs": 200},
        "runs": {
            "λ = 0": {"weight_decay": 0.0},
            "λ = 0.1": {"weight_decay": 0.1},
        },
    },
    "fig6-23": {
        "figure": "6-22, 6-23",
        "title": {"en": "Dropout", "ja": "Dropout"},
        "text": {
            "en": "The same overfitting network, without Dropout and with a Dropout ratio of 0.2 "
            "after every hidden layer.",
            "ja": "同じ過学習するネットワークを、Dropout なしと、各隠れ層の後に比率 0.2 の "
            "Dropout を入れて学習します。",
        },
        "base": {**OVERFIT, "epochs": 300},
        "runs": {
            "without Dropout": {"dropout": 0.0},
            "Dropout 0.2": {"dropout": 0.2},
        },
    },
}


def preset_runs(name: object, settings: object) -> list[tuple[dict, str]]:
    """The (raw settings, label) of each run of the preset ``name``, with the shared
    ``settings`` a client changed; ClientError 400 for an unknown preset."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ClientError(
            400, f"unknown preset {str(name)[:40]!r}; the presets are {', '.join(PRESETS)}"
        )
    if not isinstance(settings, dict):
        raise ClientError(400, f"settings must be a JSON object, got {type(settings).__name__}")
    preset = PRESETS[name]
    return [
        ({**preset["base"], **settings, **changes}, label)
        for label, changes in preset["runs"].items()
    ]


def listing() -> list[dict]:
    """The presets as the page shows them."""
    return [
        {
            "id": name,
            **{k: v for k, v in p.items() if k != "runs"},
            "runs": [{"label": label, "settings": changes} for label, changes in p["runs"].items()],
        }
        for name, p in PRESETS.items()
    ]
