"""TrendFlow's shared video extractor.

Decodes videos, runs analysis components whose models are served by Triton, and writes one
self-describing NPZ artifact per component plus a ``manifest.json`` per run. Importing this package
has no side effects (no folders, no servers, no heavy imports).
"""

__version__ = "0.1.0"
