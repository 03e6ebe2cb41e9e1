#!/usr/bin/env bash
# The package as a user gets it: build the sdist and the wheel (python -m build, the wheel from
# the sdist), check both with twine, check what the wheel holds, install it into a fresh venv
# in a temporary folder (removed at the end, whatever happens) and run there, outside the
# source tree: scratchdl --version, scratchdl predict on a digit with the shipped model, and
# scratchdl info. Any step that fails ends the script with its status. pip's own cache is
# reused, so after the first run it takes well under a minute.
# Needs python with build and twine (the dev extra): scripts/test runs it with .venv's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
[ -n "$version" ] || { echo "check_wheel: no version = \"...\" in pyproject.toml" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/scratchdl-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "--- python -m build (sdist, then the wheel from it)"
if ! "$PY" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  exit 1
fi
ls "$work/dist"
"$PY" -m twine check --strict "$work/dist/"*

echo "--- what the wheel holds"
"$PY" - "$work/dist" "$version" <<'EOF'
import sys
import zipfile
from pathlib import Path

dist, version = Path(sys.argv[1]), sys.argv[2]
(wheel,) = dist.glob(f"scratchdl-{version}-py3-none-any.whl")
names = set(zipfile.ZipFile(wheel).namelist())
package = Path("src/scratchdl")
# every module, the shipped model, the MNIST sample, the page's static files, py.typed
wanted = {
    f"scratchdl/{p.relative_to(package).as_posix()}"
    for pattern in ("**/*.py", "data/models/*", "data/mnist-sample/*", "serve/static/*")
    for p in package.glob(pattern)
    if "__pycache__" not in p.parts
} | {"scratchdl/py.typed", f"scratchdl-{version}.dist-info/licenses/LICENSE"}
missing = sorted(wanted - names)
stray = sorted(n for n in names if not n.startswith(("scratchdl/", f"scratchdl-{version}.dist-info/")))
if missing or stray:
    sys.exit(f"{wheel.name}: missing {missing}; not ours to ship {stray}")
print(f"{wheel.name}: {len(names)} files, all {len(wanted)} expected, nothing from tests/ or benchmarks/")
EOF

echo "--- a fresh venv with the wheel, used outside the source tree"
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work/dist/"*.whl
cd "$work"
bin="$work/venv/bin"
said=$("$bin/scratchdl" --version)
echo "$said"
[ "$said" = "scratchdl $version" ] || { echo "check_wheel: expected scratchdl $version" >&2; exit 1; }
# a digit as a user would photograph it: the first test image of the shipped sample (a 7)
"$bin/python" - <<'EOF'
from PIL import Image

from scratchdl.datasets import load_mnist_sample

(_, _), (x, t) = load_mnist_sample(normalize=False, flatten=False)
Image.fromarray(255 - x[0, 0]).resize((140, 140)).save("digit.png")  # dark ink on paper
open("label.txt", "w").write(str(t[0]))
EOF
said=$("$bin/scratchdl" predict digit.png)
echo "$said"
[ "${said#digit.png: $(cat label.txt) }" != "$said" ] || { echo "check_wheel: wrong digit" >&2; exit 1; }
"$bin/scratchdl" info
echo "check_wheel: the sdist and the wheel of scratchdl $version are good"
