"""Digests of the Triton models in ``model_repository/``: compute, check, sync.

A model's ``weights_digest`` (``sha256:<hex>``, a parameter of its ``config.pbtxt``) is one sha256 over,
in this order:

1. every file of its version folders (``<model>/<version>/**``, sorted; caches skipped), labelled by its
   path relative to the model folder — ``model.py`` and any weights;
2. the source of every ``extraction.kernels`` module that ``model.py`` imports, directly or through another
   kernel module, sorted by module name;
3. the external files those kernel modules name through ``asset_files()`` (the Haar cascade XML, the
   all-MiniLM-L6-v2 package files), in the order they return them.

Each part enters as ``label NUL size NUL bytes``, with labels independent of where the repository or the
venv lives, so the same code and weights give the same digest on every machine. ``config.pbtxt`` itself is
not hashed: placement, batching and comments do not change what the model computes.

A model served through an exported engine (the ``*_onnx`` models, :data:`ENGINE_BUILDS`) also declares
``engine_build_hash``: ``sha256:<hex>`` of the graph bytes its export function returns
(:func:`extraction.kernels.onnx_engine.graph_hash`). The export is byte-deterministic (fresh processes, other
thread counts and hash seeds give the same bytes), so the hash of the bytes is the build's identity; computing it
means exporting (seconds; MiniLM about 10 s), which is why :func:`check` (the weights digests, used by the unit
tests) and :func:`check_builds` are separate.

Usage::

    python -m extraction.model_repo check [--repo model_repository] [--digests-only]  # exit 1 listing stale ones
    python -m extraction.model_repo sync  [--repo model_repository] [--digests-only]  # rewrite the parameters
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.paths import REPO_ROOT
from extraction.kernels.onnx_engine import graph_hash

DEFAULT_MODEL_REPOSITORY = REPO_ROOT / "model_repository"
KERNEL_PACKAGE = "extraction.kernels"
_SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints"}


def _param_re(key: str) -> re.Pattern[str]:
    return re.compile(
        r'(parameters\s*:?\s*\{\s*key\s*:\s*"' + key
        + r'"\s*,?\s*value\s*:?\s*\{\s*string_value\s*:\s*")([^"]*)(")'
    )


_DIGEST_RE = _param_re("weights_digest")
_BUILD_RE = _param_re("engine_build_hash")

# Triton model -> (kernel module, arguments) of the ``export_graph`` that builds its engine; the model.py of the
# same name calls that function with the same arguments (Triton refuses to load it otherwise: the hash differs).
ENGINE_BUILDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "visual_embed_fast_onnx": ("extraction.kernels.onnx_visual", ("fast",)),
    "visual_embed_quality_onnx": ("extraction.kernels.onnx_visual", ("quality",)),
    "text_embed_onnx": ("extraction.kernels.onnx_text", ()),
}


@dataclass(frozen=True)
class DigestStatus:
    """Committed vs computed digest of one model."""

    model: str
    committed: str | None
    computed: str

    @property
    def ok(self) -> bool:
        return self.committed == self.computed


def model_dirs(repo: Path = DEFAULT_MODEL_REPOSITORY) -> list[Path]:
    """Model folders (those holding a ``config.pbtxt``), sorted by name."""
    return sorted(p.parent for p in Path(repo).glob("*/config.pbtxt"))


def _version_files(model_dir: Path) -> list[Path]:
    files = []
    versions = sorted((d for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    for version in versions:
        for p in sorted(version.rglob("*")):
            if p.is_file() and not _SKIP_PARTS.intersection(p.parts) and p.suffix != ".pyc":
                files.append(p)
    return files


def _kernel_imports(source: str, package: str | None = None) -> set[str]:
    """``extraction.kernels.*`` modules imported by ``source`` (absolute or, inside the package, relative)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level and package:
                base = package.rsplit(".", node.level - 1)[0]
                mod = f"{base}.{mod}" if mod else base
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]  # ``from pkg import module`` too
        found.update(n for n in names if _module_file(n) is not None)
    return found


def _module_file(name: str) -> Path | None:
    """Source file of a module of the kernel package, found without importing it (None if not one)."""
    if name != KERNEL_PACKAGE and not name.startswith(KERNEL_PACKAGE + "."):
        return None
    path = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def kernel_modules(model_dir: Path) -> list[str]:
    """Kernel modules that the model's ``model.py`` files use, transitively, sorted."""
    pending = []
    for f in _version_files(model_dir):
        if f.suffix == ".py":
            pending.extend(_kernel_imports(f.read_text()))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is not None:
            pending.extend(_kernel_imports(path.read_text(), package=name.rpartition(".")[0]))
    return sorted(n for n in seen if n != KERNEL_PACKAGE)


def _asset_files(module: str) -> list[tuple[str, Path]]:
    path = _module_file(module)
    tree = ast.parse(path.read_text())
    # Import only modules that declare assets (importing e.g. torch costs seconds).
    if not any(isinstance(n, ast.FunctionDef) and n.name == "asset_files" for n in tree.body):
        return []
    return list(importlib.import_module(module).asset_files())


def _update(h: hashlib._Hash, label: str, data: bytes) -> None:
    h.update(label.encode())
    h.update(b"\0")
    h.update(str(len(data)).encode())
    h.update(b"\0")
    h.update(data)


def digest_parts(model_dir: Path) -> list[tuple[str, Path]]:
    """The (label, file) pairs hashed for ``model_dir``, in hashing order."""
    model_dir = Path(model_dir)
    parts = [(f"model/{p.relative_to(model_dir).as_posix()}", p) for p in _version_files(model_dir)]
    modules = kernel_modules(model_dir)
    parts += [(f"kernel/{m}", _module_file(m)) for m in modules]
    for m in modules:
        parts += [(f"asset/{label}", Path(p)) for label, p in _asset_files(m)]
    return parts


def compute_digest(model_dir: Path) -> str:
    """``sha256:<hex>`` over the model's version files, kernel sources and assets (see module doc)."""
    h = hashlib.sha256()
    for label, path in digest_parts(model_dir):
        _update(h, label, Path(path).read_bytes())
    return f"sha256:{h.hexdigest()}"


def read_committed_digest(config_path: Path) -> str | None:
    """The ``weights_digest`` parameter of a ``config.pbtxt`` (None when absent)."""
    m = _DIGEST_RE.search(Path(config_path).read_text())
    return m.group(2) if m else None


def write_digest(config_path: Path, digest: str) -> bool:
    """Set the ``weights_digest`` parameter; returns True if the file changed.

    Raises:
        ValueError: the config has no ``weights_digest`` parameter to rewrite.
    """
    text = Path(config_path).read_text()
    new, n = _DIGEST_RE.subn(lambda m: m.group(1) + digest + m.group(3), text)
    if n != 1:
        raise ValueError(f"{config_path}: expected one weights_digest parameter, found {n}")
    if new != text:
        Path(config_path).write_text(new)
        return True
    return False


def check(repo: Path = DEFAULT_MODEL_REPOSITORY) -> list[DigestStatus]:
    """Committed vs computed digest of every model in ``repo``."""
    return [
        DigestStatus(d.name, read_committed_digest(d / "config.pbtxt"), compute_digest(d)) for d in model_dirs(repo)
    ]


def sync(repo: Path = DEFAULT_MODEL_REPOSITORY) -> list[str]:
    """Rewrite every stale ``weights_digest``; returns the models whose config changed."""
    return [s.model for s in check(repo) if write_digest(Path(repo) / s.model / "config.pbtxt", s.computed)]


def read_committed_build_hash(config_path: Path) -> str | None:
    """The ``engine_build_hash`` parameter of a ``config.pbtxt`` (None when absent: not an exported engine)."""
    m = _BUILD_RE.search(Path(config_path).read_text())
    return m.group(2) if m else None


def write_build_hash(config_path: Path, build_hash: str) -> bool:
    """Set the ``engine_build_hash`` parameter; returns True if the file changed.

    Raises:
        ValueError: the config has no ``engine_build_hash`` parameter to rewrite.
    """
    text = Path(config_path).read_text()
    new, n = _BUILD_RE.subn(lambda m: m.group(1) + build_hash + m.group(3), text)
    if n != 1:
        raise ValueError(f"{config_path}: expected one engine_build_hash parameter, found {n}")
    if new != text:
        Path(config_path).write_text(new)
        return True
    return False


def export_engine(model: str) -> bytes:
    """The graph bytes of ``model``'s engine, from its :data:`ENGINE_BUILDS` export function (imports torch).

    Raises:
        KeyError: ``model`` declares an ``engine_build_hash`` but has no registered build.
    """
    if model not in ENGINE_BUILDS:
        raise KeyError(f"{model}: config.pbtxt declares engine_build_hash but ENGINE_BUILDS names no export for it")
    module, build_args = ENGINE_BUILDS[model]
    return importlib.import_module(module).export_graph(*build_args)


def check_builds(repo: Path = DEFAULT_MODEL_REPOSITORY,
                 build: Callable[[str], bytes] = export_engine) -> list[DigestStatus]:
    """Committed vs computed ``engine_build_hash`` of every model that declares one (``build`` exports: slow)."""
    out = []
    for d in model_dirs(repo):
        committed = read_committed_build_hash(d / "config.pbtxt")
        if committed is not None:
            out.append(DigestStatus(d.name, committed, graph_hash(build(d.name))))
    return out


def sync_builds(repo: Path = DEFAULT_MODEL_REPOSITORY, build: Callable[[str], bytes] = export_engine) -> list[str]:
    """Rewrite every stale ``engine_build_hash``; returns the models whose config changed."""
    return [s.model for s in check_builds(repo, build)
            if write_build_hash(Path(repo) / s.model / "config.pbtxt", s.computed)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m extraction.model_repo", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["check", "sync"])
    parser.add_argument("--repo", type=Path, default=DEFAULT_MODEL_REPOSITORY, help="model repository folder")
    parser.add_argument("--digests-only", action="store_true",
                        help="weights digests only: skip exporting the engines behind engine_build_hash")
    args = parser.parse_args(argv)
    if args.command == "sync":
        changed = sync(args.repo)
        # After the digests: a build's hash is checked against the code the digest now names.
        changed += [] if args.digests_only else [f"{m} (engine_build_hash)" for m in sync_builds(args.repo)]
        print(f"updated: {', '.join(changed)}" if changed else "all digests up to date")
        return 0
    stale = [s for s in check(args.repo) if not s.ok]
    for s in stale:
        print(f"digest_mismatch: {s.model}: config.pbtxt has {s.committed}, code and weights give {s.computed}")
    stale_builds = [] if args.digests_only else [s for s in check_builds(args.repo) if not s.ok]
    for s in stale_builds:
        print(f"build_hash_mismatch: {s.model}: config.pbtxt has {s.committed}, the export gives {s.computed}")
    if stale or stale_builds:
        print("run `python -m extraction.model_repo sync` and commit the configs", file=sys.stderr)
        return 1
    print("all digests up to date" + ("" if args.digests_only else " (and engine build hashes)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
