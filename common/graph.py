"""Dependency graphs of named nodes (the extractor's components, the planner's component specs): one topological
sort and one dependency closure for both. A node is anything with ``name`` and ``dependencies`` attributes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from common.errors import ConfigError


class Node(Protocol):
    name: str
    dependencies: tuple[str, ...] | Sequence[str]


N = TypeVar("N", bound=Node)


def topo_order(nodes: Iterable[N]) -> list[N]:
    """``nodes`` sorted so each comes after its dependencies (stable: input order where the graph allows).

    Raises:
        ConfigError: (a ``ValueError``) on a dependency cycle, naming it, or a dependency on an unknown node.
    """
    items = list(nodes)
    by_name = {n.name: n for n in items}
    order: list[N] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = placed

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ConfigError(f"dependency cycle: {' -> '.join((*path, name))}")
        if name not in by_name:
            raise ConfigError(f"{path[-1] if path else '?'} depends on unknown component {name!r}")
        state[name] = 1
        for d in by_name[name].dependencies:
            visit(d, (*path, name))
        state[name] = 2
        order.append(by_name[name])

    for n in items:
        visit(n.name, ())
    return order


def closure(names: Iterable[str], nodes: Sequence[N]) -> list[N]:
    """The nodes named in ``names`` and everything they depend on, transitively, in the order of ``nodes``."""
    by_name = {n.name: n for n in nodes}
    keep: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n in keep:
            continue
        keep.add(n)
        stack.extend(by_name[n].dependencies)
    return [n for n in nodes if n.name in keep]
