"""Hyperparameter search (book ch6) on Dask distributed: ``scratchdl search``.

A thin layer over Dask, one concern per module, data flowing one way:

- ``space``: the ranges of ``--space`` and the trials' values, drawn from the seed up front;
- ``trial``: one trial, a plain function that a worker runs (``run_trial``), with the data
  loaded once per worker process;
- ``engine``: the Dask part: an embedded ``LocalCluster`` or a running cluster, one task per
  trial, results as they finish;
- ``journal``: the search's folder: its settings and ``trials.jsonl``, appended as each trial
  finishes, which makes a search resumable;
- ``report``: the ranking, ``best.json``, the table and ``search.png``.

Importing this package loads numpy only; Dask, tqdm and matplotlib are imported where used.
"""

from .engine import connect, run_trials
from .journal import Journal
from .space import Range, parse_space, sample, sample_trials
from .trial import Data, Recipe, run_trial

__all__ = [
    "Data",
    "Journal",
    "Range",
    "Recipe",
    "connect",
    "parse_space",
    "run_trial",
    "run_trials",
    "sample",
    "sample_trials",
]
