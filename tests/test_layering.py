"""No module imports a private module of another package (docs/design.md, "Layering").

A package offers its neighbours its ``__init__`` surface: ``from anyfan._core import Rate``
is fine anywhere; ``from anyfan._core._rate import Rate`` is fine only inside
``anyfan._core``. A private module of the root package (``anyfan._version``) is private to
the root package's own modules, and ``_core`` itself counts as a package, not a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
MODULES = sorted((SRC / "anyfan").rglob("*.py"))


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name the file imports (relative imports resolved)."""
    module = _name(path)
    package = _package(module, path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from . import _x` imports the module `_x`.
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
    return found


def _private_module(target: str) -> str | None:
    """The private module ``target`` reaches into, or None if it is public surface."""
    parts = target.split(".")
    if parts[0] != "anyfan":
        return None
    modules = {_name(p) for p in MODULES if p.name != "__init__.py"}
    packages = {_name(p) for p in MODULES if p.name == "__init__.py"}
    for depth in range(1, len(parts)):
        prefix = ".".join(parts[: depth + 1])
        if prefix in modules and parts[depth].startswith("_"):
            return prefix
        if prefix not in packages:
            return None
    return None


def violations() -> list[str]:
    found = []
    for path in MODULES:
        module = _name(path)
        package = _package(module, path)
        for line, target in _imports(path):
            private = _private_module(target)
            if private is not None and private.rpartition(".")[0] != package:
                found.append(f"{path.relative_to(SRC)}:{line} imports {private}")
    return sorted(set(found))


def test_the_rule_reads_imports_as_intended() -> None:
    assert _private_module("anyfan._core._rate.Rate") == "anyfan._core._rate"
    assert _private_module("anyfan._core") is None
    assert _private_module("anyfan._core.Rate") is None
    assert _private_module("anyfan._version") == "anyfan._version"
    assert _private_module("anyfan.openai._fan") == "anyfan.openai._fan"
    assert _private_module("anyfan.openai") is None
    assert _private_module("anyio._core._eventloop") is None


def test_no_module_imports_another_packages_private_module() -> None:
    assert violations() == []


if __name__ == "__main__":
    print("\n".join(violations()) or "no violations")
