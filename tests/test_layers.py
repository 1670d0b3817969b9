"""The layer table in README.md ("How the code is laid out") is the code's: every module is in
it, and none imports from a higher layer (STYLE: layers 0-4 never reach up to the UI or CLI)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lenet_cli"


def _table() -> dict[str, int]:
    """README's table: file or folder name (``train.py``, ``data/``) -> layer."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## How the code is laid out") :]
    layers = {}
    for line in section.splitlines():
        row = re.match(r"\| (\d) \| (.*?) \|", line)
        if row:
            for name in re.findall(r"`([\w./]+)`", row.group(2)):
                layers[name] = int(row.group(1))
    return layers


def _layer(module: str, table: dict[str, int]) -> int | None:
    """The layer of ``lenet_cli.a.b`` by its top-level file or folder; the package itself
    (``lenet_cli.__version__``) is layer 0."""
    parts = module.split(".")[1:]
    if not parts or parts[0] == "__version__":
        return 0
    return table.get(parts[0] + ".py", table.get(parts[0] + "/"))


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


def test_every_module_is_in_the_readme_table():
    table = _table()
    missing = [m for m, _ in _modules() if _layer(m, table) is None]
    assert missing == [], f"add these to README.md's layer table: {missing}"


def test_no_module_imports_from_a_higher_layer():
    table = _table()
    upward = []
    for module, path in _modules():
        own = _layer(module, table)
        for target in _imports(path):
            layer = _layer(target, table)
            if layer is None or (own is not None and layer > own):
                upward.append(f"{module} (layer {own}) imports {target} (layer {layer})")
    assert upward == []
