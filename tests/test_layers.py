"""The layout table in README.md ("How the code is laid out") is the code's: every module and
folder of the package is in it, and no module imports from a later row (STYLE: the engines never
reach up to the UI or the CLI; the optional accelerator in fast/ never reaches the loop)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lenet_cli"
MAX_TOP_MODULES = 12


def _table() -> dict[str, int]:
    """README's table: module or folder name (``model.py``, ``data/``) -> its order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## How the code is laid out") :]
    order = {}
    for line in section.splitlines():
        row = re.match(r"\| (\d+) \| (.*?) \|", line)
        if row:
            for name in re.findall(r"`([\w./]+)`", row.group(2)):
                order[name] = int(row.group(1))
    return order


def _order(module: str, table: dict[str, int]) -> int | None:
    """The order of ``lenet_cli.a.b`` by its top-level module or folder. ``lenet_cli`` and
    ``lenet_cli.__version__`` as imported names are the version: order 0."""
    parts = module.split(".")[1:]
    if not parts or parts[0] == "__version__":
        return 0
    return table.get(parts[0] + ".py", table.get(parts[0] + "/"))


def _own_order(module: str, table: dict[str, int]) -> int | None:
    return table.get("__init__.py") if module == "lenet_cli" else _order(module, table)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lenet_cli"):
            if node.module == "lenet_cli":  # from lenet_cli import x, y
                found |= {f"lenet_cli.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lenet_cli")}
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        out.append((".".join(("lenet_cli", *parts)).removesuffix(".__init__"), path))
    return out


def test_every_module_and_folder_is_in_the_readme_table():
    table = _table()
    missing = [m for m, _ in _modules() if _own_order(m, table) is None]
    assert missing == [], f"add these to README.md's layout table: {missing}"
    stale = [n for n in table if not (PACKAGE / n).exists()]
    assert stale == [], f"README.md's layout table names what does not exist: {stale}"


def test_no_module_imports_from_a_later_row():
    table = _table()
    upward = []
    for module, path in _modules():
        own = _own_order(module, table)
        for target in _imports(path):
            order = _order(target, table)
            if order is None or (own is not None and order > own):
                upward.append(f"{module} (row {own}) imports {target} (row {order})")
    assert upward == []


def test_every_folder_says_what_it_holds_and_what_it_may_import():
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"{folder.name}/__init__.py has no docstring"


def test_the_top_of_the_package_stays_small():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    # the Python API's functions live at the top: no module or folder may shadow them
    for name in ("train", "evaluate", "predict", "export", "load"):
        assert not (PACKAGE / f"{name}.py").exists() and not (PACKAGE / name).exists(), name


MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_stay_short():
    """No module of the package over 300 lines, no function (or method) over 60: a reader
    finds one concern per module and one step per function."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT).as_posix()
        lines = len(text.splitlines())
        found = [f"{lines} lines"] if lines > MAX_MODULE_LINES else []
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{node.name} (line {node.lineno}): {length} lines")
        long += [f"{where}: {what}" for what in found]
    assert long == [], "split by concern: " + "; ".join(long)
