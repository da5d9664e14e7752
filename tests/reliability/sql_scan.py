"""Find SQL that ``zapanalytics`` builds from strings instead of binding parameters.

An AST walk over the package: every call that runs SQL (``.execute``, ``.executemany``,
``.sql``, ``.query``, and :func:`zapanalytics.store.queries.frame`) whose SQL text is an
f-string, a ``%``-format, a ``.format()`` call or a concatenation, directly or through a
local variable assigned that way in the same function, is a *dynamic SQL site*. Such a site
is safe only when every interpolated piece is an identifier the code chose or validated
(table and column names from the store's catalogue, a checked table name), never a value
from a source; values go in as ``?`` parameters.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

_SQL_METHODS = frozenset({"execute", "executemany", "sql", "query"})
_SQL_FUNCTIONS = frozenset({"frame"})  # zapanalytics.store.queries.frame(con, sql, params)
#: Text that makes a string SQL: built dynamically anywhere, it is a site even before it
#: reaches ``execute`` (a helper may return it).
_SQL_TEXT = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|COPY|CREATE|ALTER TABLE|DROP)\b")


@dataclasses.dataclass(frozen=True, order=True)
class Site:
    """One dynamic SQL site: file (relative to the package's parent), enclosing function, line."""

    path: str
    function: str
    line: int
    pieces: str  # the interpolated expressions, as source text

    @property
    def key(self) -> tuple[str, str]:
        return self.path, self.function


def _is_dynamic(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    return False


def _sql_template(node: ast.AST) -> bool:
    """A dynamic string whose literal parts read as SQL."""
    if not _is_dynamic(node):
        return False
    literal = " ".join(
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )
    return _SQL_TEXT.search(literal) is not None


def _pieces(node: ast.AST, source: str) -> str:
    if isinstance(node, ast.JoinedStr):
        parts = [ast.get_source_segment(source, v.value) or "?" for v in node.values if isinstance(v, ast.FormattedValue)]
    else:
        parts = [ast.get_source_segment(source, node) or "?"]
    return ", ".join(parts)


def _sql_argument(call: ast.Call) -> ast.AST | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in _SQL_METHODS and call.args:
        return call.args[0]
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name in _SQL_FUNCTIONS and len(call.args) >= 2:
        return call.args[1]
    return None


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(qualified name, node) of every function, and the module itself as ``<module>``."""
    yield "<module>", tree

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """Nodes of ``function`` outside its nested functions."""
    for child in ast.iter_child_nodes(function):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield child
        yield from _own_nodes(child)


def scan_file(path: Path, root: Path) -> list[Site]:
    source = path.read_text("utf-8")
    tree = ast.parse(source)
    relative = path.relative_to(root).as_posix()
    sites = []
    for name, function in _functions(tree):
        nodes = list(_own_nodes(function))
        dynamic_names: dict[str, ast.AST] = {}
        for node in nodes:
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                dynamic = value is not None and (_is_dynamic(value) or isinstance(node, ast.AugAssign))
                for target in targets:
                    if isinstance(target, ast.Name) and dynamic:
                        dynamic_names[target.id] = value
        reported: set[int] = set()
        for node in nodes:
            if not isinstance(node, ast.Call):
                continue
            argument = _sql_argument(node)
            if argument is None:
                continue
            built = argument
            if isinstance(argument, ast.Name) and argument.id in dynamic_names:
                built = dynamic_names[argument.id]
            if _is_dynamic(built) or (built is not argument):
                sites.append(Site(relative, name, node.lineno, _pieces(built, source)))
                reported.add(id(built))
        for node in nodes:
            if id(node) not in reported and isinstance(node, ast.JoinedStr | ast.BinOp | ast.Call) and _sql_template(node):
                sites.append(Site(relative, name, node.lineno, _pieces(node, source)))
    return sites


def scan_package(package: Path) -> list[Site]:
    root = package.parent
    return sorted(site for path in sorted(package.rglob("*.py")) for site in scan_file(path, root))
