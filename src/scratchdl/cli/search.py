"""``scratchdl search``: the book's random search of hyperparameters (ch6), on Dask distributed.

Every trial is drawn up front from ``--seed`` and run as one Dask task, on an embedded
cluster of ``--workers`` processes or on a running one (``--scheduler``). Each finished
trial is appended at once to ``OUT/trials.jsonl``; the same command again resumes, running
only the trials that are missing, and a search with other settings is refused. At the end:
``OUT/best.json``, ``OUT/search.png`` and a table of the best trials.

Part of the command line: ``cli/__init__.py`` holds the parser and ``main``, which prints the
ValueError (or OSError) of a wrong argument as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path

from ..experiments.common import Setting, count
from ..optimizers import OPTIMIZERS
from ..search.space import BOOK_SPACE, FORM, PARAMETERS, check_seed, parse_space, sample_trials
from ..search.trial import MODELS, Data, Recipe
from ..support.atomic import check_writable, lock_folder, stale_temp_files
from .args import folder, positive_float, positive_int

TRIALS = count(100, quick=12)  # the book's 100; quick: enough to show the pattern
EPOCHS = count(50, quick=10)  # the book's 50
VALIDATION = 0.2  # the book's validation_rate
TOP = 10  # trials in the printed table and in best.json's "top"
# what --set may change; quick mode's values are those of `experiment hyperparameter-search`
SETTINGS = {
    "train_size": count(500, quick=300, low=2),  # the book: the first 500 training images
    "batch_size": count(100, quick=20),  # quick: 120 steps in 10 epochs, enough to learn
    "hidden_size": count(100),  # the mlp's: 784-[100 x 6]-10, the book's
    "hidden_layers": count(6),
    "optimizer": Setting("sgd", choices=tuple(OPTIMIZERS)),
}
WRITTEN = ("trials.jsonl", "best.json", "search.png")
PARAMS_RTOL = 1e-12  # a resumed trial's values match the drawn ones this closely (same_params)


def add_command(sub) -> None:
    """Add the search subcommand to the subparsers ``sub`` of cli.make_parser."""
    p = sub.add_parser(
        "search",
        help="random search of learning rate and weight decay on Dask (book ch6)",
        description=__doc__.splitlines()[0].replace("``", ""),  # help is plain text, not RST
    )
    p.add_argument("--model", choices=MODELS, default="mlp", help="default: mlp (the book's)")
    p.add_argument("--trials", type=positive_int, help=f"default {TRIALS.default} (--quick 12)")
    p.add_argument("--epochs", type=positive_int, help=f"default {EPOCHS.default} (--quick 10)")
    p.add_argument(
        "--space",
        nargs="+",
        action="extend",
        metavar=FORM,
        help=f"ranges to sample, each replacing the book's ({' '.join(BOOK_SPACE)}); "
        f"names: {', '.join(PARAMETERS)}",
    )
    p.add_argument(
        "--validation",
        type=fraction,
        default=VALIDATION,
        help=f"fraction of the training images held out (default {VALIDATION})",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a fixed setting: "
        + ", ".join(f"{k}={s.default}" for k, s in SETTINGS.items())
        + " (repeatable)",
    )
    p.add_argument("--quick", action="store_true", help="the MNIST sample shipped in the package")
    p.add_argument("--seed", type=int, default=0)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=positive_int,
        help="worker processes of the embedded cluster (default: the usable cores)",
    )
    where.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on the cluster of this `dask scheduler` instead",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        help="seconds to wait for the scheduler and a first worker (default 10)",
    )
    p.add_argument("--out", type=folder, help="the search's folder (default runs/search-MODEL)")
    p.add_argument("--data-dir", help="MNIST's folder on the workers (default $SCRATCHDL_DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1), got {text}")
    return value


def fixed_settings(pairs: list[str] | None, quick: bool) -> dict:
    """The SETTINGS of this mode, changed by ``--set KEY=VALUE`` pairs (checked)."""
    values = {key: s.value(quick) for key, s in SETTINGS.items()}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        if key not in SETTINGS:
            raise ValueError(
                f"--set {pair}: no setting {key!r}; settings: "
                + ", ".join(f"{k}={s.value(quick)}" for k, s in SETTINGS.items())
            )
        values[key] = SETTINGS[key].check(f"--set {key}", value.strip())
    return values


def plan(args) -> tuple[Recipe, tuple, int, dict]:
    """(recipe, space, trials, settings) of the command, every value checked: a wrong one
    raises ValueError naming the option before any cluster starts or file is written."""
    fixed = fixed_settings(args.set, args.quick)
    seed = check_seed(args.seed)
    space = parse_space(args.space)
    if args.quick and args.data_dir:
        raise ValueError("--data-dir is not used with --quick (the package's own sample)")
    data = Data(
        sample=args.quick,
        train_size=fixed["train_size"],
        validation=args.validation,
        seed=seed,
        data_dir=args.data_dir,
    )
    recipe = Recipe(
        model=args.model,
        epochs=args.epochs or EPOCHS.value(args.quick),
        batch_size=fixed["batch_size"],
        optimizer=fixed["optimizer"],
        hidden_size=fixed["hidden_size"],
        hidden_layers=fixed["hidden_layers"],
        data=data,
    )
    # what a resumed search must share with the saved one (not --trials: a search may grow)
    settings = {
        "--model": recipe.model,
        "--epochs": recipe.epochs,
        "--space": [r.text() for r in space],
        "--validation": data.validation,
        "--seed": seed,
        "--quick": data.sample,
        **{f"--set {key}": value for key, value in fixed.items()},
    }
    return recipe, space, args.trials or TRIALS.value(args.quick), settings


def cmd_search(args) -> int:
    recipe, space, trials, settings = plan(args)
    out = Path(args.out or f"runs/search-{recipe.model}{'-quick' if args.quick else ''}")
    with contextlib.ExitStack() as stack:
        try:  # a read-only folder or a full disk shows up now, not after the search
            check_writable(out)
            stack.enter_context(lock_folder(out))  # one search at a time in a folder
        except OSError as e:  # FolderLocked too: the messages name the folder and the reason
            raise ValueError(f"--out: {e.strerror or e}") from None
        for name in WRITTEN:  # a search killed while it wrote them: none can be writing now
            for stale in stale_temp_files(out / name):
                stale.unlink(missing_ok=True)
        return search(args, recipe, space, trials, settings, out)


def search(args, recipe: Recipe, space: tuple, trials: int, settings: dict, out: Path) -> int:
    from ..search import engine, report
    from ..search.journal import Journal, read_journal

    journal = Journal.open(out, settings)
    sampled = sample_trials(space, args.seed, trials)
    for i, record in journal.finished.items():
        if i < trials and not same_params(record["params"], sampled[i]):
            raise ValueError(
                f"{journal.path}: trial {i} was run with {record['params']}, but this search "
                f"draws {sampled[i]} for it: the journal is another search's; use another --out"
            )
    if journal.torn:
        print(
            f"search: the last line of {journal.path} was cut short (a search stopped while "
            "writing it); it is set aside and its trial runs again",
            file=sys.stderr,
        )
    todo = [(i, params) for i, params in enumerate(sampled) if i not in journal.finished]
    workers = None
    if args.scheduler is None and todo:
        workers = engine.worker_count(args.workers, len(todo))
        if args.workers and workers < args.workers:
            print(f"search: --workers {args.workers} capped at {workers}: {capped(workers)}")
    where = args.scheduler or f"{workers} local workers"
    if todo:
        kept = f"; {trials - len(todo)} already in {journal.path}" if len(todo) < trials else ""
        if args.scheduler is None:  # fails here, once, not in every worker: the data is found
            from ..search.trial import load_split

            load_split(recipe.data)
        try:
            with engine.connect(args.scheduler, workers, timeout=args.timeout) as client:
                print(f"search: {len(todo)} of {trials} trials of {recipe.model} on {where}{kept}")
                engine.run_trials(
                    client,
                    recipe,
                    args.seed,
                    todo,
                    journal.append,
                    progress=not args.quiet,
                    total=trials,
                    desc=f"search ({where})",
                )
        except KeyboardInterrupt:
            kept = len(read_journal(journal.path))  # as on disk: Ctrl-C may cut an append short
            print(
                f"scratchdl search: stopped; {kept} finished trials are kept in "
                f"{journal.path}: run the same command to resume",
                file=sys.stderr,
            )
            raise
    else:
        print(f"search: all {trials} trials already finished in {journal.path}")
    ranked = report.ranking([journal.finished[i] for i in range(trials)])
    best = report.write_best(out, ranked, {**settings, "--trials": trials}, TOP)
    fig = report.draw(ranked, space, title(recipe, trials))
    report.save(fig, out / report.FIGURE_FILE)
    print(report.table(ranked, TOP))
    diverged = sum(r["diverged"] for r in ranked)
    print(
        f"{len(ranked)} trials ({diverged} diverged); wrote {journal.path}, {best}, "
        f"{out / report.FIGURE_FILE}"
    )
    return 0


def same_params(saved: dict, drawn: dict) -> bool:
    """Whether a journal's trial was run with the values this search draws for it, up to
    the last bits: they come from libm's pow and log10, which may round differently on the
    machine that resumes the search; another search's values differ in every digit."""
    return saved.keys() == drawn.keys() and all(
        math.isclose(saved[k], drawn[k], rel_tol=PARAMS_RTOL, abs_tol=0.0) for k in drawn
    )


def capped(workers: int) -> str:
    """Why ``engine.worker_count`` gave ``workers``: the trials left, or the cores."""
    from ..search import engine

    cores = engine.usable_cores()
    if workers == engine.WORKERS_PER_CORE * cores:
        return f"{engine.WORKERS_PER_CORE} per usable core ({cores} cores)"
    return f"the trials left to run ({workers})"


def title(recipe: Recipe, trials: int) -> str:
    data = recipe.data
    images = "the package's MNIST sample" if data.sample else "MNIST"
    network = (
        f"784-[{recipe.hidden_size} x {recipe.hidden_layers}]-10"
        if recipe.model == "mlp"
        else recipe.model
    )
    return (
        f"Random search, {trials} trials: {network}, {recipe.optimizer}, {recipe.epochs} epochs "
        f"on the first {data.train_size} training images of {images} "
        f"({data.validation:.0%} held out for validation)"
    )
