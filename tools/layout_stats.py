"""Layout statistics of a source tree: what issue 13's acceptance asks to compare between two commits.

    python tools/layout_stats.py [ROOT]      (ROOT defaults to the current directory)

Prints, for the tree at ROOT: physical lines per top-level package (production packages first, then the
demo, benchmarks and test support), the 10 longest functions (all of them, then outside ``benchmarks/``), the
number of ``noqa`` markers (and how many are ``PLC0415``), and import cycles found on the import graph that
import-linter builds (grimp): between top-level packages and between the sibling modules of each package.
A development tool; nothing imports it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

NOT_PRODUCTION = ("demo", "benchmarks", "testsupport", "tests", "tools")


def packages(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in ("tests", "tools")
    )


def py_files(root: Path, package: str) -> list[Path]:
    return sorted(p for p in (root / package).rglob("*.py") if "__pycache__" not in p.parts)


def lines_per_package(root: Path) -> dict[str, int]:
    return {pkg: sum(len(f.read_text().splitlines()) for f in py_files(root, pkg)) for pkg in packages(root)}


def functions(root: Path) -> list[tuple[int, str]]:
    out = []
    for pkg in packages(root):
        for f in py_files(root, pkg):
            tree = ast.parse(f.read_text())
            stack: list[tuple[ast.AST, str]] = [(tree, "")]
            while stack:
                node, prefix = stack.pop()
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        name = f"{prefix}{child.name}"
                        if not isinstance(child, ast.ClassDef):
                            out.append(
                                (child.end_lineno - child.lineno + 1, f"{f.relative_to(root)}:{child.lineno} {name}")
                            )
                        stack.append((child, name + "."))
    return sorted(out, reverse=True)


def noqa(root: Path) -> tuple[int, int]:
    files = [f for pkg in packages(root) for f in py_files(root, pkg)]
    files += sorted((root / "tests").rglob("*.py")) if (root / "tests").exists() else []
    text = "\n".join(f.read_text() for f in files)
    return len(re.findall(r"#\s*noqa", text)), len(re.findall(r"#\s*noqa[^\n]*PLC0415", text))


def cycles(root: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Strongly connected components (size > 1) of the package graph and of each package's sibling graph."""
    import grimp

    sys.path.insert(0, str(root))
    pkgs = packages(root)
    graph = grimp.build_graph(*pkgs, cache_dir=None)

    def sccs(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
        index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

        def visit(v: str) -> None:
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in edges.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        sys.setrecursionlimit(10000)
        for n in nodes:
            if n not in index:
                visit(n)
        return out

    def squash(module: str, parent: str) -> str | None:
        if not module.startswith(parent + "."):
            return None
        return parent + "." + module[len(parent) + 1 :].split(".")[0]

    # Entry points (``python -m pkg``, the ``__main__`` modules) compose packages from above by design, as the
    # layers contract declares; the package graph is drawn without them.
    top: dict[str, set[str]] = {p: set() for p in pkgs}
    for m in graph.modules:
        if m.endswith(".__main__"):
            continue
        a = m.split(".")[0]
        for imported in graph.find_modules_directly_imported_by(m):
            b = imported.split(".")[0]
            if b in top and a != b:
                top[a].add(b)
    package_cycles = sccs(pkgs, top)
    sibling_cycles = []
    parents = sorted({m for m in graph.modules if graph.find_children(m)})
    for parent in parents:
        children = sorted(graph.find_children(parent))
        edges: dict[str, set[str]] = {c: set() for c in children}
        for m in graph.find_descendants(parent):
            a = squash(m, parent)
            for imported in graph.find_modules_directly_imported_by(m):
                b = squash(imported, parent)
                if a and b and a != b:
                    edges[a].add(b)
        sibling_cycles += sccs(children, edges)
    return package_cycles, sibling_cycles


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else ".").resolve()
    lines = lines_per_package(root)
    prod = {k: v for k, v in lines.items() if k not in NOT_PRODUCTION}
    total = sum(prod.values())
    print(f"tree: {root}")
    print(f"production lines: {total}")
    for k, v in sorted(prod.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<14} {v:>6}  {100 * v / total:4.1f}%")
    print("not production:")
    for k in NOT_PRODUCTION:
        if k in lines:
            print(f"  {k:<14} {lines[k]:>6}")
    funcs = functions(root)
    print("10 longest functions:")
    for n, where in funcs[:10]:
        print(f"  {n:>4}  {where}")
    outside = [(n, w) for n, w in funcs if not w.startswith("benchmarks/")]
    print("10 longest functions outside benchmarks/:")
    for n, where in outside[:10]:
        print(f"  {n:>4}  {where}")
    print(f"functions over 80 lines outside benchmarks/: {sum(1 for n, _ in outside if n > 80)}")
    n_noqa, n_plc = noqa(root)
    print(f"noqa markers (packages + tests): {n_noqa} (PLC0415: {n_plc})")
    pkg_cycles, sib_cycles = cycles(root)
    print(f"import cycles between top-level packages (entry points aside): {len(pkg_cycles)}")
    for c in pkg_cycles:
        print("  " + " <-> ".join(c))
    print(f"import cycles between sibling modules: {len(sib_cycles)}")
    for c in sib_cycles:
        print("  " + " <-> ".join(c))
    print(
        f"lines={total} longest={outside[0][0]} noqa={n_noqa} package_cycles={len(pkg_cycles)} "
        f"sibling_cycles={len(sib_cycles)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
