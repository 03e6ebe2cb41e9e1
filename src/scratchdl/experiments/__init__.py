"""The book's experiments, one module each; matplotlib is imported only inside this package.

Every experiment module defines ``NAME`` (the command-line name), ``CHAPTER``, ``TITLE``
(one line, for ``--list``), ``EXPLANATION`` (a paragraph: what the book shows and how to
read the figure), ``KEY_NUMBERS`` (the JSON keys the gallery shows), ``SETTINGS`` (each
setting's default, quick-mode value, kind and range: a ``common.Setting``), ``LABELS`` (every
word of its figure, ``{"en": {...}, "ja": {...}}`` with the same keys, the Japanese in the
book's terms; ``"title"`` is the title) and

    run(out: Path, *, seed: int = 0, quick: bool = False, progress: bool = True,
        lang: str = "en", **options) -> dict

which writes ``out/NAME.png`` and ``out/NAME.json`` (through ``common.save_result``) and
returns the numbers written. ``lang`` changes the figure's words only (drawn inside
``plots.language``, which picks a font with Japanese glyphs), never a number. ``quick``
finishes in seconds (for the tests); without it the book's settings are used. ``run`` first
checks its ``options`` (``common.options``) and ``lang``: an unknown one, or a value of the
wrong kind, out of range, NaN or infinite, raises ValueError before anything is computed or
written.

The list of experiments, and running them, is ``registry``.
"""
