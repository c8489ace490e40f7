"""Registry of the extractor's components, in dependency (topological) order."""

from __future__ import annotations

from common.graph import topo_order
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


def default_components() -> list[Component]:
    return topo_order([cls() for cls in ALL_COMPONENTS])


__all__ = ["ALL_COMPONENTS", "Component", "ComponentResult", "ComputeContext", "VideoInput", "default_components",
           "topo_order"]
