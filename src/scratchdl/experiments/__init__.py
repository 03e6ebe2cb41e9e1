"""The book's experiments, one module each; matplotlib is imported only inside this package.

Every experiment module defines ``NAME`` (the command-line name), ``CHAPTER``, ``TITLE``
(one line, for ``--list``), ``EXPLANATION`` (a paragraph: what the book shows and how to
read the figure), ``KEY_NUMBERS`` (the JSON keys the gallery shows) and

    run(out: Path, *, seed: int = 0, quick: bool = False, progress: bool = True,
        **options) -> dict

which writes ``out/NAME.png`` and ``out/NAME.json`` (through ``_common.save_result``) and
returns the numbers written. ``quick`` finishes in seconds (for the tests); without it the
book's settings are used. Unknown ``options`` raise ValueError naming the accepted ones.
"""

EXPERIMENTS = (
    "gates",
    "activations",
    "gradient-descent",
    "gradient-check",
    "optimizer-paths",
    "optimizer-compare",
    "weight-init-histogram",
    "weight-init-compare",
    "batchnorm",
    "overfit-weight-decay",
    "overfit-dropout",
    "hyperparameter-search",
    "filters",
    "pooling-shift",
    "layer-cost",
    "receptive-field",
    "augmentation",
    "misclassified",
    "half-float",
)


def module_name(name: str) -> str:
    """The module of experiment ``name``: ``scratchdl.experiments.<name with _>``."""
    return f"{__name__}.{name.replace('-', '_')}"
