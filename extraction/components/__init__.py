"""Registry of the extractor's components, in dependency (topological) order."""

from __future__ import annotations

from extraction.components.base import Component, ComponentResult, ComputeContext, VideoInput
from extraction.components.modules import FacePresence, VideoPacing
from extraction.components.providers import (
    AudioProvider,
    FacesProvider,
    FramesProvider,
    MetadataProvider,
    MotionProvider,
    TextProvider,
    VisualProvider,
)

ALL_COMPONENTS: tuple[type[Component], ...] = (
    MetadataProvider, FramesProvider, VisualProvider, MotionProvider, FacesProvider, AudioProvider, TextProvider,
    VideoPacing, FacePresence,
)


def topo_order(components: list[Component]) -> list[Component]:
    """Components sorted so each comes after its dependencies; raises on cycles or unknown deps."""
    by_name = {c.name: c for c in components}
    order: list[Component] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
        if name not in by_name:
            raise ValueError(f"{path[-1] if path else '?'} depends on unknown component {name!r}")
        state[name] = 1
        for d in by_name[name].dependencies:
            visit(d, (*path, name))
        state[name] = 2
        order.append(by_name[name])

    for c in components:
        visit(c.name, ())
    return order


def default_components() -> list[Component]:
    return topo_order([cls() for cls in ALL_COMPONENTS])


__all__ = ["ALL_COMPONENTS", "Component", "ComponentResult", "ComputeContext", "VideoInput", "default_components",
           "topo_order"]
