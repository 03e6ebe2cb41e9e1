"""Threads over parts of the batch: scratchdl.engine.threads and the plan's split forward and
backward, through public names only."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from scratchdl import (
    DeepConvNet,
    MultiLayerNet,
    Sequential,
    SimpleConvNet,
    get_num_threads,
    set_num_threads,
)
from scratchdl.engine import ConvEngine, threads
from scratchdl.layers import Convolution, Layer, Relu
from scratchdl.optimizers import Adam
from tests.conftest import held_arrays

threadpoolctl = pytest.importorskip("threadpoolctl")  # a dependency wherever scratchdl is

RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def restore_threads():
    before = get_num_threads()
    yield
    set_num_threads(before)


def small_simple():
    return SimpleConvNet(
        (1, 10, 10), {"filter_num": 4, "filter_size": 3, "pad": 0, "stride": 1}, 6, 3,
        weight_init_std=0.3, rng=1, dtype=np.float64,
    )  # fmt: skip


def small_deep():
    return DeepConvNet((1, 12, 12), hidden_size=8, output_size=3, rng=2, dtype=np.float64)


def batch(model, N=7, seed=None):
    rng = RNG if seed is None else np.random.default_rng(seed)
    x = rng.standard_normal((N, *model.input_shape))
    t = rng.integers(0, model.output_size, N)
    return x, t


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="int >= 1"):
        set_num_threads(bad)


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_a_bad_thread_count_in_the_environment_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(threads.ENV_THREADS, value)
    set_num_threads(None)  # the default again, read from the environment on next use
    with pytest.raises(ValueError, match=threads.ENV_THREADS):
        get_num_threads()


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv(threads.ENV_THREADS, "3")
    set_num_threads(None)
    assert get_num_threads() == 3
    set_num_threads(2)  # a setting wins over the environment
    assert get_num_threads() == 2


@pytest.mark.parametrize("N,n", [(1, 1), (7, 2), (100, 3), (5, 5)])
def test_split_covers_the_batch_in_near_equal_contiguous_parts(N, n):
    parts = threads.split(N, n)
    assert len(parts) == n and parts[0][0] == 0 and parts[-1][1] == N
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    sizes = [hi - lo for lo, hi in parts]
    assert max(sizes) - min(sizes) <= 1


def test_run_all_returns_results_in_order_and_waits_for_every_task():
    set_num_threads(3)
    done = []

    def task(i):
        def run():
            done.append(i)
            return i * i

        return run

    assert threads.run_all([task(i) for i in range(3)]) == [0, 1, 4]
    assert sorted(done) == [0, 1, 2]


def test_blas_threads_is_one_inside_the_parts_and_blas_own_setting_elsewhere():
    set_num_threads(2)
    assert threads.run_all([threads.blas_threads] * 2) == [1, 1]
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert threads.blas_threads() == 1
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert threads.blas_threads() == 2  # not a reading cached from before


def test_convolution_bands_are_small_in_parts_and_large_where_blas_shares_a_product():
    # in a part BLAS has one thread: cache-sized bands; where BLAS splits each product over
    # several threads, bands as large as shared_band_bytes
    engine = ConvEngine(band_bytes=144 * 28 * 8, shared_band_bytes=1 << 30)  # a row; all rows
    set_num_threads(2)
    in_part = threads.run_all([lambda: len(engine.tiles(28, 28, 1, 144, np.float64))] * 2)
    assert in_part == [28, 28]
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert len(engine.tiles(28, 28, 1, 144, np.float64)) == 1


def test_run_all_reraises_a_failure_after_the_other_tasks_finish():
    set_num_threads(2)
    finished = []

    def fail():
        raise ValueError("part 0 failed")

    def slow():
        import time

        time.sleep(0.05)
        finished.append(True)

    with pytest.raises(ValueError, match="part 0 failed"):
        threads.run_all([fail, slow])
    assert finished == [True]


@pytest.mark.parametrize("make", [small_simple, small_deep], ids=["simple", "deep"])
@pytest.mark.parametrize("n", [2, 3])
def test_split_gradient_loss_and_scores_equal_the_single_thread_ones(make, n):
    model = make()
    x, t = batch(model)
    set_num_threads(1)
    model.loss(x, t, train=True)  # draws the dropout masks; hold them for both runs
    model.set_dropout_mask_hold(True)
    g1 = {k: v.copy() for k, v in model.gradient(x, t).items()}
    loss1 = model.last_loss
    assert model.plan.split == 0
    set_num_threads(n)
    g2, loss2 = model.gradient(x, t), model.last_loss
    assert model.plan.split > 0 and len(model.plan.parts.parts) == n  # it did split
    assert loss2 == pytest.approx(loss1, rel=1e-13)
    for name in g1:
        np.testing.assert_allclose(g2[name], g1[name], rtol=1e-11, atol=1e-14, err_msg=name)
    y2 = model.predict(x)
    set_num_threads(1)
    np.testing.assert_allclose(y2, model.predict(x), rtol=1e-13, atol=1e-15)


def test_split_gradient_matches_the_numerical_gradient():
    set_num_threads(2)
    model = small_simple()
    x, t = batch(model, N=4)
    grads = model.gradient(x, t)
    assert model.plan.split == len(model.plan.stages(model.layers))  # no dropout: all split
    numeric = model.numerical_gradient(x, t)
    for name, g in grads.items():
        np.testing.assert_allclose(g, numeric[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_which_stages_are_split():
    set_num_threads(2)
    deep = small_deep()
    stages = deep.plan.stages(deep.layers)
    first_dropout = next(i for i, s in enumerate(stages) if type(s).__name__ == "Dropout")
    assert deep.plan.leading(deep.layers, 8, train=True) == first_dropout
    assert deep.plan.leading(deep.layers, 8, train=False) == len(stages)  # dropout: identity
    assert deep.plan.leading(deep.layers, 1, train=False) == 0  # one sample: nothing to split
    mlp = MultiLayerNet(6, [5, 4], 3, rng=0)
    assert mlp.plan.leading(mlp.layers, 8, train=False) == 0  # no convolution: not worth it
    set_num_threads(1)
    assert deep.plan.leading(deep.layers, 8, train=False) == 0


def test_a_layer_that_does_not_declare_per_sample_is_never_split():
    class Mixer(Layer):  # couples the samples of a batch: must see the whole batch
        def forward(self, x, train=False):
            return x - x.mean(axis=0)

        def backward(self, dout):
            return dout - dout.mean(axis=0)

    set_num_threads(2)
    conv = Convolution(RNG.standard_normal((2, 1, 3, 3)), np.zeros(2))
    model = Sequential([Mixer(), conv, Relu()], input_shape=(1, 5, 5), dtype=np.float64)
    assert model.plan.leading(model.layers, 6, train=False) == 0
    model = Sequential([conv, Relu(), Mixer()], input_shape=(1, 5, 5), dtype=np.float64)
    assert model.plan.leading(model.layers, 6, train=False) == 1  # the fused conv-relu


def test_copies_share_parameters_so_updates_reach_every_part():
    set_num_threads(2)
    model = small_simple()
    x, t = batch(model, N=6)
    opt = Adam(lr=0.01)
    opt.update(model.params, model.gradient(x, t))
    own, copy = model.plan.parts.stacks  # the stages of parts 0 and 1
    for mine, theirs in zip(own, copy, strict=True):
        assert mine is not theirs
        for key in mine.params:
            assert theirs.params[key] is mine.params[key]
    # after the update both parts see the new weights: the split forward equals one thread's
    y_split = model.predict(x)
    set_num_threads(1)
    np.testing.assert_allclose(model.predict(x), y_split, rtol=1e-13)


def test_training_with_threads_is_deterministic():
    def run():
        set_num_threads(2)
        model = DeepConvNet((1, 12, 12), hidden_size=8, output_size=3, rng=5)
        x, t = batch(model, N=10, seed=6)
        opt = Adam()
        for _ in range(3):
            opt.update(model.params, model.gradient(x, t))
        return model.predict(x)

    np.testing.assert_array_equal(run(), run())


def test_without_threadpoolctl_everything_runs_in_one_thread():
    # a fresh interpreter where threadpoolctl cannot be imported
    code = (
        "import sys; sys.modules['threadpoolctl'] = None\n"
        "import numpy as np, scratchdl\n"
        "from scratchdl.engine import threads\n"
        "scratchdl.set_num_threads(2)\n"
        "m = scratchdl.SimpleConvNet((1, 8, 8), {'filter_num': 2, 'filter_size': 3, 'pad': 0,"
        " 'stride': 1}, 4, 3, rng=0)\n"
        "m.gradient(np.zeros((6, 1, 8, 8)), np.zeros(6, int))\n"
        "print(m.plan.split, threads.threads_for(6), threads.blas_threads() >= 1)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1", "True"]


def test_copies_made_later_do_not_share_the_memory_of_earlier_passes():
    # every engine reuses its memory when the shape repeats: parts of 4 with two threads,
    # then three parts of 4 with three threads, must each get memory of their own
    model = small_deep()
    set_num_threads(2)
    x, t = batch(model, N=8)
    model.predict(x)
    set_num_threads(3)
    x, t = batch(model, N=12)
    y3 = model.predict(x)
    set_num_threads(1)
    np.testing.assert_allclose(y3, model.predict(x), rtol=1e-13, atol=1e-15)
    set_num_threads(3)
    model.predict(x)
    # and structurally: no array one part's stages keep shares memory with another part's
    shared = {id(a) for a in (*model.params.values(), *model.buffers.values())}
    stacks = model.plan.parts.stacks
    assert len(stacks) == 3
    for i, stage in enumerate(stacks[0]):
        kept = [[a for a in held_arrays(stack[i]) if id(a) not in shared] for stack in stacks]
        if hasattr(stage, "engine"):  # a convolution's: the padded input at least
            assert all(len(k) >= 1 for k in kept), stage
        for a in range(len(kept)):
            for b in range(a + 1, len(kept)):
                for u in kept[a]:
                    assert not any(np.shares_memory(u, v) for v in kept[b]), stage


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_threads_of_its_own():
    import multiprocessing

    set_num_threads(2)
    model = small_simple()
    x, _ = batch(model, N=6, seed=1)
    expected = model.predict(x)  # the parent's pool now has threads
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:  # the child would hang on the parent's dead threads
        got = pool.apply_async(model.predict, (x,)).get(timeout=30)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_a_batch_too_small_to_split_runs_its_products_on_one_blas_thread():
    class Probe(Layer):  # records BLAS's threads while the model runs it
        per_sample = True
        seen: list = []

        def forward(self, x, train=False):
            Probe.seen.append(threads.blas_threads())
            return x

        def backward(self, dout):
            return dout

    set_num_threads(2)
    conv = Convolution(RNG.standard_normal((2, 1, 3, 3)), np.zeros(2))
    model = Sequential([conv, Relu(), Probe()], input_shape=(1, 5, 5), dtype=np.float64)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        model.predict(RNG.standard_normal((1, 1, 5, 5)))  # one image: nothing to split
        model.predict(RNG.standard_normal((4, 1, 5, 5)))  # split: each part on one thread
        assert threads.blas_threads() == 2  # given back after each forward
    assert Probe.seen == [1, 1, 1]
