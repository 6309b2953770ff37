"""The packages point one way: the core (``interp``) never imports ``steering`` or the app, checked on the import graph."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE_FORBIDDEN = ("steering", "serve", "ui", "pages", "streamlit", "app")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included), as absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def _import_graph(package: str) -> dict[str, set[str]]:
    graph = {}
    for path in (ROOT / package).rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = _imports(path)
    return graph


def test_the_core_never_imports_steering_or_the_app():
    graph = _import_graph("interp")
    assert len(graph) > 20  # really read the package
    offenders = {
        module: sorted(name for name in imported if name.split(".")[0] in CORE_FORBIDDEN) for module, imported in graph.items()
    }
    offenders = {module: names for module, names in offenders.items() if names}
    assert not offenders, f"interp imports the layers above it: {offenders}"


def test_steering_never_imports_the_server_or_the_app():
    graph = _import_graph("steering")
    offenders = {
        m: sorted(n for n in i if n.split(".")[0] in ("serve", "ui", "pages", "streamlit", "app")) for m, i in graph.items()
    }
    assert not {m: n for m, n in offenders.items() if n}


def test_the_server_never_imports_the_app():
    graph = _import_graph("serve")
    assert len(graph) > 5  # really read the package
    offenders = {m: sorted(n for n in i if n.split(".")[0] in ("ui", "pages", "streamlit", "app")) for m, i in graph.items()}
    assert not {m: n for m, n in offenders.items() if n}


def test_importing_every_core_module_loads_no_steering_module():
    # The same, at run time: import each interp module in a fresh interpreter and look at sys.modules.
    code = (
        "import importlib, pkgutil, sys, interp\n"
        "for m in pkgutil.walk_packages(interp.__path__, 'interp.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('steering', 'ui', 'streamlit'))\n"
        "print(len([n for n in sys.modules if n.startswith('interp')]), bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    count, bad = out.stdout.strip().split(" ", 1)
    assert int(count) > 20 and bad == "[]", out.stdout
