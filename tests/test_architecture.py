"""The package's structure, read from the source with ast: floors, circles, length, names.

From the bottom: the engine (what makes the layers fast) imports nothing else of scratchdl;
the layers import no model, optimizer, training, data set, file format, export, search,
server, experiment, command line or matplotlib; the models none of those above them; the
book's maths modules at the top level no layer or model; the datasets package's modules only
those below them. The rules name packages, not files, so that they hold wherever the plumbing
moves (``cli*.py`` or a ``cli/`` package). Every module reads in one sitting, imports flow one
way (no circle, nothing reaches up into a package's ``__init__``), no module uses another's
private names, tests use public names only, and the walk of one batch stays short. (What
importing the package loads is test_package.py's.)
"""

from __future__ import annotations

import ast
import builtins
import functools
from pathlib import Path

import scratchdl

SRC = Path(scratchdl.__file__).parent
TESTS = Path(__file__).parent

ABOVE_THE_MODELS = (
    "scratchdl.trainer",
    "scratchdl.augment",
    "scratchdl.datasets",
    "scratchdl.files",
    "scratchdl.export",
    "scratchdl.search",
    "scratchdl.serve",
    "scratchdl.experiments",
    "scratchdl.cli",  # the command line, one package
    "matplotlib",
)
ABOVE_THE_LAYERS = ("scratchdl.models", "scratchdl.optimizers", *ABOVE_THE_MODELS)
# the book's maths, one chapter's idea a module: below the layers
BOOK_MODULES = (
    "functions",
    "gradient",
    "graph",
    "perceptron",
    "columns",
    "weight_init",
    "optimizers",
)
# test files allowed to reach into private state, and how often: none any more; a test
# checks behaviour through public names
STILL_PRIVATE: dict[str, int] = {}
MAX_LINES = 400  # STYLE.md: modules that read in one sitting


@functools.cache
def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names taken from it, line) for every import in the file, lazy ones inside
    functions included, relative ones resolved; ``import a.b`` takes no names."""
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


def imported(name: str, path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import in the file; ``from pkg import mod`` counts
    as ``pkg.mod``, ``from mod import f`` as ``mod``."""
    mods = modules()
    found = []
    for base, names, line in imports(name, path):
        found += [(f"{base}.{n}" if f"{base}.{n}" in mods else base, line) for n in names]
        found += [(base, line)] if not names else []
    return found


def crossings(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    """Every import by a module under ``importers`` of one under ``forbidden``."""

    def under(module: str, prefixes: tuple[str, ...]) -> bool:
        return any(module == p or module.startswith((p + ".", p + "_")) for p in prefixes)

    bad = []
    for name, path in modules().items():
        if under(name, importers):
            bad += [f"{name}:{line} imports {m}" for m, line in imported(name, path)
                    if under(m, forbidden)]  # fmt: skip
    return bad


def test_the_engine_imports_nothing_of_scratchdl_but_itself():
    bad = [
        f"{name}:{line} imports {m}"
        for name, path in modules().items()
        if name.startswith("scratchdl.engine")
        for m, line in imported(name, path)
        if m.split(".")[0] == "scratchdl" and not m.startswith("scratchdl.engine")
    ]
    assert bad == []


def test_the_plumbing_imports_nothing_of_scratchdl_but_itself():
    """support/ (checks, atomic files, the figures' look) sits below every floor, so that the
    experiments, the search and the command line draw figures from below them."""
    bad = [
        f"{name}:{line} imports {m}"
        for name, path in modules().items()
        if name.startswith("scratchdl.support")
        for m, line in imported(name, path)
        if m.split(".")[0] == "scratchdl" and not m.startswith("scratchdl.support")
    ]
    assert bad == []


def test_the_top_level_holds_the_books_modules():
    """Plumbing lives in packages that say what they hold; the top level is the book's."""
    top = {p.stem for p in SRC.glob("*.py")} - {"__init__"}
    assert top <= {*BOOK_MODULES, "trainer", "exercises"}, sorted(top)


def test_the_layers_import_nothing_from_a_floor_above():
    assert crossings(("scratchdl.layers",), ABOVE_THE_LAYERS) == []


def test_the_models_import_nothing_from_a_floor_above():
    assert crossings(("scratchdl.models",), ABOVE_THE_MODELS) == []


def test_the_books_maths_modules_import_no_layer_or_model():
    book = tuple(f"scratchdl.{m}" for m in BOOK_MODULES)
    assert crossings(book, ("scratchdl.layers", *ABOVE_THE_LAYERS)) == []


def test_the_floor_rules_can_fail():
    # the rules read the real imports: the models' own imports of the layers are seen
    assert any(
        "scratchdl.layers" in m
        for m, _ in imported("scratchdl.models.plan", SRC / "models" / "plan.py")
    )
    assert crossings(("scratchdl.models",), ("scratchdl.layers",)) != []


DATASETS_FLOORS = ("idx", "store", "download", "mnist")  # each imports only those before it


def test_the_datasets_package_imports_one_way_and_no_private_names():
    folder = SRC / "datasets"
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted([*DATASETS_FLOORS, "__init__"])
    for module in DATASETS_FLOORS:
        tree = ast.parse((folder / f"{module}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("scratchdl") for a in node.names), module
            if not isinstance(node, ast.ImportFrom):
                continue
            where = (module, node.level, node.module)
            if node.level == 0:
                assert not (node.module or "").startswith("scratchdl"), where
            elif node.level == 1:  # a sibling: one below this module, named, never private
                assert node.module in DATASETS_FLOORS[: DATASETS_FLOORS.index(module)], where
            else:
                assert node.level == 2 and node.module in ("support.checks", "support.atomic"), (
                    where
                )
            if node.level:
                assert not any(a.name.startswith("_") for a in node.names), where


# --- every module ------------------------------------------------------------------------------


def test_no_module_is_longer_than_a_sitting():
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()}
    assert {n: k for n, k in long.items() if k > MAX_LINES} == {}


def test_no_module_reaches_up_into_the_package_init():
    # from a package above it, a module may take that package's modules, never what the
    # package's __init__ defines (``from scratchdl import __version__`` ran upward); a
    # package's ``__main__`` (``python -m``) runs what its own ``__init__`` defines
    mods = modules()
    bad = []
    for name, path in mods.items():
        if path.name == "__main__.py":
            continue
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


# --- the tests ---------------------------------------------------------------------------------


def private_uses(path: Path) -> list[str]:
    """Private names of the library that a test file imports or reads: ``from scratchdl...
    import _x``, ``obj._x`` (but on numpy or another library, and ``self._x``), and
    ``setattr(obj, "_x", ...)`` / ``monkeypatch.setattr(obj, "_x", ...)``."""
    tree = ast.parse(path.read_text())
    outside = {"self", "cls"}  # names bound to other libraries, or to a test's own object
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            outside |= {
                (a.asname or a.name).split(".")[0]
                for a in node.names
                if not a.name.startswith("scratchdl")
            }
        elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith("scratchdl"):
            if not node.level:
                outside |= {a.asname or a.name for a in node.names}
    for node in ast.walk(tree):  # x = np.<...>: x belongs to that library too
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            names = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
            names -= set(dir(builtins))
            if names and names <= outside and isinstance(node.targets[0], ast.Name):
                outside.add(node.targets[0].id)

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scratchdl"):
            bad += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                    if private(a.name)]  # fmt: skip
        elif isinstance(node, ast.Attribute) and private(node.attr):
            root = node.value
            while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                root = root.func if isinstance(root, ast.Call) else root.value
            if not (isinstance(root, ast.Name) and root.id in outside):
                bad.append(f"{path.name}:{node.lineno} reads {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            key = node.args[1]
            if called in ("setattr", "getattr", "delattr") and isinstance(key, ast.Constant):
                if isinstance(key.value, str) and private(key.value):
                    bad.append(f"{path.name}:{node.lineno} {called}s {key.value}")
    return bad


def test_tests_use_public_names_only():
    found = {path.name: private_uses(path) for path in sorted(TESTS.glob("*.py"))}
    over = {name: uses for name, uses in found.items() if len(uses) > STILL_PRIVATE.get(name, 0)}
    assert over == {}, "make the name public, or test through public names"


def test_the_private_name_check_can_fail(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import numpy as np\n"
        "from scratchdl.engine.threads import _usable_cores\n"
        "np._core\n"  # numpy's: not ours
        "model._plan(3)\n"
        "monkeypatch.setattr(threads, '_num_threads', None)\n"
    )
    uses = private_uses(sample)
    assert sorted(u.split(" ", 1)[1] for u in uses) == [
        "imports _usable_cores",
        "reads model._plan",
        "setattrs _num_threads",
    ]


def test_one_batch_walks_few_rooms():
    """Issue 22's bound on the walk of one batch: benchmarks/call_trace.py, a real trace of
    SimpleConvNet.gradient (one thread, batch 8, steady state), at most 12 stays in the
    package's rooms and at most 5 re-entries into a room already left."""
    import re
    import subprocess
    import sys

    script = TESTS.parent / "benchmarks" / "call_trace.py"
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    found = re.search(r"(\d+) stays, (\d+) re-entries", out)
    assert found, out
    stays, re_entries = map(int, found.groups())
    assert stays <= 12 and re_entries <= 5, out
    assert out.splitlines()[1].startswith("models -> "), out  # the walk starts at the model
