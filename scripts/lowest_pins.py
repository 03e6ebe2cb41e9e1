"""Print pip constraints that pin every dependency of pyproject.toml (and the extras named on
the command line) to the lowest version its range admits: `name>=1.2` -> `name==1.2`.

scripts/test installs the package with these into a second venv and runs the suite there,
so that the ranges in pyproject.toml stay promises that are tested.
Usage: python scripts/lowest_pins.py [EXTRA ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
LOWER = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9A-Za-z.]*)")


def table_list(text: str, key: str) -> list[str]:
    """The strings of the TOML array ``key = [...]`` (the first one of that name)."""
    match = re.search(rf"^{re.escape(key)}\s*=\s*\[(.*?)\]", text, re.M | re.S)
    if match is None:
        raise SystemExit(f"pyproject.toml has no list {key!r}")
    return re.findall(r'"([^"]+)"', match.group(1))


def main(extras: list[str]) -> None:
    text = PYPROJECT.read_text()
    requirements = table_list(text, "dependencies")
    for extra in extras:
        requirements += table_list(text, extra)
    for req in requirements:
        if req.startswith("scratchdl"):
            continue  # an extra that includes another one
        match = LOWER.match(req)
        if match is None:
            raise SystemExit(f"no lower bound to pin in {req!r}: write it as name>=version")
        print(f"{match.group(1)}=={match.group(2)}")


if __name__ == "__main__":
    main(sys.argv[1:])
