"""The package's promises about itself: the library imports numpy only, modules read in one
sitting, imports flow one way (no circle, nothing reaches up into the package's __init__), and
no module uses another module's private names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import scratchdl

SRC = Path(scratchdl.__file__).parent
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
MAX_LINES = 400  # STYLE.md: modules that read in one sitting
# what the library is: importing any of these must load numpy and the standard library only
LIBRARY = (
    "scratchdl",
    "scratchdl.export",
    "scratchdl.models",
    "scratchdl.layers",
    "scratchdl.functions",
    "scratchdl.gradient",
    "scratchdl.init",
    "scratchdl.optimizers",
    "scratchdl.perceptron",
    "scratchdl.graph",
    "scratchdl.columns",
    "scratchdl.engine",
    "scratchdl.augment",
    "scratchdl.datasets",
    "scratchdl.trainer",
    "scratchdl.files",
    "scratchdl.checks",
    "scratchdl.atomic",
)


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file, lazy ones
    inside functions included; relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names], node.lineno))
    return found


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


def test_no_module_is_longer_than_a_sitting():
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()}
    assert {n: k for n, k in long.items() if k > MAX_LINES} == {}


def test_no_module_reaches_up_into_the_package_init():
    # from a package above it, a module may take that package's modules, never what the
    # package's __init__ defines (``from scratchdl import __version__`` ran upward)
    mods = modules()
    bad = []
    for name, path in mods.items():
        for target, names, line in imports(name, path):
            if name.startswith(target + "."):
                upward = [n for n in names if f"{target}.{n}" not in mods] or (names == [])
                if upward:
                    bad.append(f"{name}:{line} takes {upward} from {target}/__init__")
    assert bad == []


def test_no_module_uses_another_modules_private_names():
    mods = modules()
    bad = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        aliases = {}  # local name -> imported scratchdl module
        for target, names, line in imports(name, path):
            if not target.startswith("scratchdl"):
                continue
            for n in names:
                if n.startswith("_") and n != "__future__":
                    bad.append(f"{name}:{line} imports {target}.{n}")
                if f"{target}.{n}" in mods:
                    aliases[n] = f"{target}.{n}"
        for node in ast.walk(tree):
            if isinstance(node, ast.alias) and node.asname and node.name in aliases:
                aliases[node.asname] = aliases[node.name]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                bad.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert bad == []


def test_imports_flow_one_way():
    mods = modules()
    graph = {name: set() for name in mods}
    for name, path in mods.items():
        for target, names, _ in imports(name, path):
            for dep in {target, *(f"{target}.{n}" for n in names)}:
                if dep in mods and dep != name and not name.startswith(dep + "."):
                    graph[name].add(dep)  # a package's modules may use their package's others
    # a package's __init__ only gathers its modules: walk through it to what it re-exports
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(trail[trail.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_dir_shows_the_librarys_names_only():
    public = {n for n in dir(scratchdl) if not n.startswith("_")}
    submodules = {n for n in public if f"scratchdl.{n}" in modules()}
    assert public - submodules == set(scratchdl.__all__)  # no PackageNotFoundError, version


def test_the_version_is_written_in_pyproject_only():
    # scratchdl.__version__ and `scratchdl --version` read the installed package's metadata
    written = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
                value = node.value.value
                if targets & {"__version__", "VERSION"} and re.match(r"\d+\.\d+", str(value)):
                    written.append(f"{name}:{node.lineno} {value!r}")
    assert written == []
    assert re.search(r'^version = "\d+\.\d+\.\d+"$', PYPROJECT.read_text(), re.M)
    assert (SRC / "py.typed").is_file()  # PEP 561: the annotations are for users' checkers
