"""The package as users install and import it: importing the library loads numpy only (the
optional libraries only when a command or a format needs them), ``dir(scratchdl)`` shows the
library's names, and the version and the type hints ship as packaging says. (The structure of
the source, floors, circles, module length and private names, is test_architecture.py's.)"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import scratchdl

SRC = Path(scratchdl.__file__).parent
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# what the library is: importing any of these must load numpy and the standard library only
LIBRARY = (
    "scratchdl",
    "scratchdl.export",
    "scratchdl.models",
    "scratchdl.layers",
    "scratchdl.functions",
    "scratchdl.gradient",
    "scratchdl.weight_init",
    "scratchdl.optimizers",
    "scratchdl.perceptron",
    "scratchdl.graph",
    "scratchdl.columns",
    "scratchdl.engine",
    "scratchdl.augment",
    "scratchdl.datasets",
    "scratchdl.trainer",
    "scratchdl.files",
    "scratchdl.support.checks",
    "scratchdl.support.atomic",
)


def test_importing_the_library_loads_numpy_only():
    # what the interpreter loaded before (site's .pth files: matplotlib 3.7's mpl_toolkits)
    # does not count; cython_runtime is the runtime of numpy's compiled modules
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"for name in {LIBRARY!r}: __import__(name)\n"
        "std = set(sys.stdlib_module_names)\n"
        "top = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(t for t in top - std if not t.startswith('_') and t not in "
        "{'scratchdl', 'numpy', 'cython_runtime'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]", f"importing the library loaded {out.strip()}"


def test_importing_files_needs_none_of_the_optional_libraries():
    code = (
        "import sys; sys.modules['safetensors'] = None; import scratchdl.files; "
        "sys.modules.pop('safetensors'); import scratchdl.files; "
        "import scratchdl.files.checkpoint, scratchdl.files.book_pickle; "
        "heavy = {'safetensors', 'matplotlib', 'tqdm', 'PIL'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_importing_datasets_loads_its_optional_libraries_only_when_needed():
    lazy = {"tqdm", "tarfile", "PIL", "matplotlib", "safetensors"}
    code = f"import sys, scratchdl.datasets; print(sorted({lazy!r} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_command_line_loads_its_libraries_only_when_a_command_needs_them():
    code = (
        "import sys, scratchdl.cli; scratchdl.cli.make_parser()\n"
        "heavy = {'matplotlib', 'tqdm', 'PIL', 'safetensors', 'fastapi', 'starlette', 'uvicorn',"
        " 'dask', 'distributed', 'onnx', 'onnxruntime', 'playwright'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_dir_shows_the_librarys_names_only():
    public = {n for n in dir(scratchdl) if not n.startswith("_")}
    submodules = {
        n for n in public if (SRC / n / "__init__.py").is_file() or (SRC / f"{n}.py").is_file()
    }
    assert public - submodules == set(scratchdl.__all__)  # no PackageNotFoundError, version


def test_the_version_is_written_in_pyproject_only():
    # scratchdl.__version__ and `scratchdl --version` read the installed package's metadata
    written = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC.parent)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
                value = node.value.value
                if targets & {"__version__", "VERSION"} and re.match(r"\d+\.\d+", str(value)):
                    written.append(f"{name}:{node.lineno} {value!r}")
    assert written == []
    assert re.search(r'^version = "\d+\.\d+\.\d+"$', PYPROJECT.read_text(), re.M)
    assert (SRC / "py.typed").is_file()  # PEP 561: the annotations are for users' checkers
