"""``scratchdl experiment``: list, run one, or run all and write a gallery page."""

from __future__ import annotations

import html
import importlib
import json
import time
from pathlib import Path

from ..support.atomic import atomic_write
from ..support.figures import check_lang, labels
from .common import plain

EXPERIMENTS = (
    "gates",
    "activations",
    "gradient-descent",
    "tangent-line",
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
    return f"scratchdl.experiments.{name.replace('-', '_')}"


def load(name: str):
    """The module of experiment ``name``; ValueError listing the choices if unknown."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choices: all, {', '.join(EXPERIMENTS)}")
    return importlib.import_module(module_name(name))


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    """``["lr=0.1", "iterations=500"]`` -> ``{"lr": "0.1", "iterations": "500"}``."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        result[key.strip().replace("-", "_")] = value.strip()
    return result


def run_one(
    name: str, out: Path, *, seed: int, quick: bool, progress: bool, lang: str = "en", **options
) -> dict:
    module = load(name)
    numbers = module.run(out, seed=seed, quick=quick, progress=progress, lang=lang, **options)
    return plain(numbers)  # as written to the JSON file: lists, not numpy arrays


def main(args) -> int:
    if args.list or not args.name:
        width = max(map(len, EXPERIMENTS))
        for name in EXPERIMENTS:
            module = load(name)
            print(f"{name:<{width}}  [ch{module.CHAPTER}] {module.TITLE}")
        print(f"{'all':<{width}}  every experiment, and OUT/index.html showing them")
        return 0
    out = Path(args.out)
    run_args = dict(
        seed=args.seed,
        quick=args.quick,
        progress=not getattr(args, "quiet", False),
        lang=check_lang(getattr(args, "lang", "en")),
    )
    options = parse_sets(getattr(args, "set", None))
    if args.model:
        options["model"] = args.model
    if getattr(args, "workers", None):
        options["workers"] = args.workers
    if args.name != "all":
        start = time.perf_counter()
        numbers = run_one(args.name, out, **run_args, **options)
        shown = _key_numbers(load(args.name), numbers)
        print(
            f"{args.name}: wrote {out / (args.name + '.png')} and {out / (args.name + '.json')} "
            f"in {time.perf_counter() - start:.1f} s"
        )
        for key, value in shown.items():
            print(f"  {key}: {_format(value)}")
        return 0
    if options:
        raise ValueError("--set and --model apply to one experiment, not to all")
    seconds = {}
    for name in EXPERIMENTS:
        start = time.perf_counter()
        run_one(name, out, **run_args)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: done in {seconds[name]:.1f} s", flush=True)
    write_index(out, seconds, quick=args.quick, lang=run_args["lang"])
    print(f"wrote {out / 'index.html'}")
    return 0


def _key_numbers(module, numbers: dict) -> dict:
    return {k: numbers[k] for k in getattr(module, "KEY_NUMBERS", ()) if k in numbers}


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_format(v)}" for k, v in value.items())
    if isinstance(value, list) and len(value) > 8:
        return f"[{', '.join(_format(v) for v in value[:8])}, …] ({len(value)} values)"
    if isinstance(value, list):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    return str(value)


def write_index(
    out: Path, seconds: dict[str, float] | None = None, *, quick: bool = False, lang: str = "en"
) -> None:
    """A gallery page, ``out/index.html``: each figure with its explanation and key numbers.

    Reads the experiments' JSON files in ``out`` (those present, in the book's order);
    ``seconds`` adds how long each took. In Japanese (``lang="ja"``) the headings are the
    experiments' Japanese titles; the explanations are in docs/experiments.ja.md.
    """
    out = Path(out)
    page_text = labels(PAGE, lang)
    names = [n for n in EXPERIMENTS if (out / f"{n}.json").exists()]
    if not names:
        raise ValueError(f"no experiment results (NAME.json) in {out}")
    sections = []
    for name in names:
        module = load(name)
        title = html.escape(labels(module.LABELS, lang)["title"])
        numbers = json.loads((out / f"{name}.json").read_text())
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(_format(v))}</td></tr>"
            for k, v in _key_numbers(module, numbers).items()
        )
        took = page_text["took"].format(seconds[name]) if seconds and name in seconds else ""
        command = f"scratchdl experiment {name}" + ("" if lang == "en" else f" --lang {lang}")
        explanation = " ".join(module.EXPLANATION.split()) if lang == "en" else page_text["read"]
        sections.append(
            f'<section id="{name}"><h2>{title} '
            f"<small>({page_text['chapter'].format(module.CHAPTER)}, <code>{command}</code>)"
            f'</small></h2><img src="{name}.png" alt="{title}">'
            f"<p>{html.escape(explanation)}</p>"
            f'<table>{rows}</table><p class="meta">{took}{page_text["numbers"]} '
            f'<a href="{name}.json">{name}.json</a></p></section>'
        )
    toc = "".join(
        f'<li><a href="#{n}">{html.escape(labels(load(n).LABELS, lang)["title"])}</a></li>'
        for n in names
    )
    mode = page_text["quick"] if quick else ""
    page = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{page_text["title"]}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }}
section {{ border-top: 1px solid #ccc; padding: 1em 0; }}
img {{ max-width: 100%; }}
table {{ border-collapse: collapse; font-size: 90%; }}
th, td {{ text-align: left; padding: 2px 10px; border-bottom: 1px solid #eee; }}
small, .meta {{ color: #666; font-weight: normal; }}
</style></head><body>
<h1>{page_text["heading"]}{html.escape(mode)}</h1>
<ol>{toc}</ol>
{"".join(sections)}
</body></html>
"""
    atomic_write(out / "index.html", page.encode())


# The gallery page's own words, in each language of the figures.
PAGE = {
    "en": {
        "title": "scratchdl: the book's experiments",
        "heading": "The experiments of <i>Deep Learning from Scratch</i>",
        "quick": " (quick mode: small settings, not the book's)",
        "chapter": "chapter {}",
        "took": "{:.1f} s; ",
        "numbers": "numbers in",
        "read": "",
    },
    "ja": {
        "title": "scratchdl: 本書の実験",
        "heading": "『ゼロから作る Deep Learning』の実験",
        "quick": "（短時間版: 本書より小さな設定）",
        "chapter": "第{}章",
        "took": "{:.1f} 秒、",
        "numbers": "数値は",
        "read": "図の読み方と本書との比較は docs/experiments.ja.md にあります。",
    },
}
