"""README.md and README.ja.md cover the same ground: the same sections in the same order (a
mapping of the English headings to the Japanese ones), and the same commands and options in
their command tables, which name only options the command line has."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from scratchdl import cli

ROOT = Path(__file__).resolve().parents[1]
EN, JA = ROOT / "README.md", ROOT / "README.ja.md"

# Every section of README.md (## and ###, in order) and its name in README.ja.md.
SECTIONS = {
    "## Install and first steps": "## インストールと最初の一歩",
    "### With pip, from a clone": "### クローンから pip で入れる",
    "### A tour in five steps": "### 5 つのステップで一巡り",
    "### macOS and Windows": "### macOS と Windows",
    "## What scratchdl is": "## scratchdl とは",
    "## A network in ten lines": "## 10 行で書くネットワーク",
    "## Reading it with the book": "## 本書と一緒に読む",
    "### Chapter 2: Perceptrons": "### 第2章 パーセプトロン",
    "### Chapter 3: Neural networks": "### 第3章 ニューラルネットワーク",
    "### Chapter 4: Training neural networks": "### 第4章 ニューラルネットワークの学習",
    "### Chapter 5: Backpropagation": "### 第5章 誤差逆伝播法",
    "### Chapter 6: Training techniques": "### 第6章 学習に関するテクニック",
    "### Chapter 7: Convolutional networks": "### 第7章 畳み込みニューラルネットワーク",
    "### Chapter 8: Deep learning": "### 第8章 ディープラーニング",
    "## The command line": "## コマンドライン",
    "## Look inside the network: `scratchdl serve`": "## ネットワークの中を見る: `scratchdl serve`",
    "## Train from the page: the Train tab": "## ページから学習する: 「学習」タブ",
    "## Exporting to ONNX": "## ONNX への書き出し",
    "## Data": "## データ",
    "## The book's weight files": "## 本書の重みファイル",
    "## The book's experiments": "## 本書の実験",
    "## Hyperparameter search, on one machine or many": (
        "## ハイパーパラメータの探索（1 台でも、何台でも）"
    ),
    "## Results": "## 結果",
    "## Threads": "## スレッド",
    "## Public API": "## 公開 API",
    "## Differences from the book, on purpose": "## 本書との意図的な違い",
    "## Development": "## 開発",
    "## License": "## ライセンス",
}


def _lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (a "# comment" in bash is no heading)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def headings(path: Path) -> list[str]:
    return [line.rstrip() for line in _lines(path) if re.match(r"#{2,3} ", line)]


def table(path: Path, section: str, columns: slice = slice(1, 2)) -> list[list[str]]:
    """The ``columns`` of each row of the first table under ``section`` (the first column by
    default; column 0 is what lies before the first "|"), header and rule left out."""
    lines = _lines(path)
    start = lines.index(section)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[columns]])
        elif rows:
            break  # the table has ended
    return rows[2:]


def test_the_japanese_readme_has_every_section_of_the_english_one_in_order():
    assert headings(EN) == list(SECTIONS), "README.md's sections changed: update SECTIONS"
    assert headings(JA) == list(SECTIONS.values())


@pytest.mark.parametrize(
    "en, ja, columns",
    [
        ("## The command line", "## コマンドライン", slice(1, 2)),  # commands and options
        ("## Public API", "## 公開 API", slice(1, 2)),  # modules
        ("## The book's weight files", "## 本書の重みファイル", slice(1, 2)),  # the files
        ("## Reading it with the book", "## 本書と一緒に読む", slice(2, 5)),  # the chapters'
    ],
)
def test_the_tables_list_the_same_commands_modules_and_files(en, ja, columns):
    def code(rows: list[list[str]]) -> list[list[str]]:  # what is in `...`: no language
        return [[span for cell in row for span in re.findall(r"`([^`]+)`", cell)] for row in rows]

    english = code(table(EN, en, columns))
    assert english and code(table(JA, ja, columns)) == english


def _command_help(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.make_parser().parse_args([command, "--help"])
    return out.getvalue()


def test_the_command_table_names_every_command_and_only_real_options():
    rows = [row for (row,) in table(EN, "## The command line")]
    commands = [row.strip("`").split()[1] for row in rows]
    usage = cli.make_parser().format_usage()
    assert set(commands) == set(re.search(r"\{([\w,-]+)\}", usage).group(1).split(","))
    for command, row in zip(commands, rows, strict=True):
        text = _command_help(command)
        unknown = [o for o in re.findall(r"--[a-z][\w-]*", row) if o not in text]
        assert unknown == [], f"scratchdl {command} has no {unknown}"
