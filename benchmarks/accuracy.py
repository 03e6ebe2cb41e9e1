"""Train the book's networks on the full MNIST and record wall time and test accuracy.

Not a test: each run takes minutes to an hour on 2 cores. Results go to stdout as a
Markdown row and to ``benchmarks/results/accuracy-<run>.json``; copy the rows into
``benchmarks/RESULTS.md``.

    python benchmarks/accuracy.py two-layer simple deep deep-augment
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from scratchdl import (
    Augmenter,
    DeepConvNet,
    SimpleConvNet,
    Trainer,
    TwoLayerNet,
    load_mnist,
)
from scratchdl.files import save

RESULTS = Path(__file__).parent / "results"

# half the images shifted by up to 2 px, turned by up to 10 degrees, scaled by 0.9-1.1; built
# in run() on the run's own generator, so that the draws are those of the recorded results
MILD_AUGMENT = dict(max_shift=2.0, max_rotation=10.0, scale=(0.9, 1.1), p=0.5)

# name -> (model factory, flatten the input, Trainer keyword arguments); the book's settings
RUNS = {
    # ch05 train_neuralnet.py: 10000 iterations of batch 100 = 16.7 epochs, SGD lr 0.1
    "two-layer": (
        lambda rng: TwoLayerNet(784, 50, 10, rng=rng),
        True,
        dict(epochs=17, optimizer="sgd", optimizer_param={"lr": 0.1}),
    ),
    # ch07 train_convnet.py: 20 epochs, Adam lr 0.001, batch 100
    "simple": (
        lambda rng: SimpleConvNet(rng=rng),
        False,
        dict(epochs=20, optimizer="adam", optimizer_param={"lr": 0.001}),
    ),
    # ch08 train_deepnet.py: 20 epochs, Adam lr 0.001, batch 100
    "deep": (
        lambda rng: DeepConvNet(rng=rng),
        False,
        dict(epochs=20, optimizer="adam", optimizer_param={"lr": 0.001}),
    ),
    "simple-augment": (
        lambda rng: SimpleConvNet(rng=rng),
        False,
        dict(epochs=20, optimizer="adam", optimizer_param={"lr": 0.001}, augment=True),
    ),
    # not the book's: the same, with the learning rate divided by 10 for the last 5 epochs
    "deep-decay": (
        lambda rng: DeepConvNet(rng=rng),
        False,
        dict(epochs=20, optimizer="adam", optimizer_param={"lr": 0.001}, lr_decay_epochs=(16,)),
    ),
    "deep-augment": (
        lambda rng: DeepConvNet(rng=rng),
        False,
        dict(epochs=20, optimizer="adam", optimizer_param={"lr": 0.001}, augment=True),
    ),
    # not the book's: the book's recipe with the learning rate divided by 10 for the last 5
    "simple-decay": (
        lambda rng: SimpleConvNet(rng=rng),
        False,
        dict(epochs=20, optimizer="adam", optimizer_param={"lr": 0.001}, lr_decay_epochs=(16,)),
    ),
    # not the book's: the book's 20 epochs with the milder augmentation below and the
    # rate divided by 10 for the last 5
    "simple-augment-decay": (
        lambda rng: SimpleConvNet(rng=rng),
        False,
        dict(
            epochs=20,
            optimizer="adam",
            optimizer_param={"lr": 0.001},
            augment=MILD_AUGMENT,
            lr_decay_epochs=(16,),
        ),
    ),
    # not the book's: milder augmentation (half the images untouched, rotation up to 10
    # degrees) for 30 epochs, the rate divided by 10 at epochs 21 and 27
    "deep-augment-decay": (
        lambda rng: DeepConvNet(rng=rng),
        False,
        dict(
            epochs=30,
            optimizer="adam",
            optimizer_param={"lr": 0.001},
            augment=MILD_AUGMENT,
            lr_decay_epochs=(21, 27),
        ),
    ),
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )


def run(name: str, seed: int, epochs: int | None) -> dict:
    make, flatten, kwargs = RUNS[name]
    tag = name if seed == 0 else f"{name}-seed{seed}"
    kwargs = dict(kwargs)
    if epochs is not None:
        kwargs["epochs"] = epochs
    (x_train, t_train), (x_test, t_test) = load_mnist(flatten=flatten)
    rng = np.random.default_rng(seed)
    network = make(rng)
    if isinstance(kwargs.get("augment"), dict):
        kwargs["augment"] = Augmenter(**kwargs["augment"], rng=rng)
    RESULTS.mkdir(exist_ok=True)
    trainer = Trainer(
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        mini_batch_size=100,
        evaluate_sample_num_per_epoch=10000,
        rng=rng,
        checkpoint_path=RESULTS / f"checkpoint-{tag}.safetensors",
        **kwargs,
    )
    checkpoint = RESULTS / f"checkpoint-{tag}.safetensors"
    if checkpoint.exists():  # a long run that was interrupted continues where it stopped
        trainer.resume(checkpoint)
    start = time.perf_counter()
    history = trainer.train()
    wall = time.perf_counter() - start
    result = {
        "run": name,
        "command": f"python benchmarks/accuracy.py {name} --seed {seed}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "epochs": trainer.epochs,
        "optimizer": repr(trainer.optimizer),
        "augment": repr(kwargs.get("augment", False)),
        "wall_seconds_this_process": round(wall, 1),
        "epoch_seconds": [round(s, 1) for s in history["epoch_seconds"]],
        "test_acc_per_epoch": history["test_acc"],
        "final_test_acc": network.accuracy(x_test, t_test),
    }
    save(network, RESULTS / f"model-{tag}.safetensors")
    (RESULTS / f"accuracy-{tag}.json").write_text(json.dumps(result, indent=1))
    checkpoint.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", choices=sorted(RUNS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="override the book's epoch count")
    args = parser.parse_args()
    for name in args.runs:
        r = run(name, args.seed, args.epochs)
        total = sum(r["epoch_seconds"])
        print(
            f"| {r['run']} | `{r['command']}` | {r['date']} | {r['epochs']} | "
            f"{total / 60:.1f} min | {r['final_test_acc']:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
