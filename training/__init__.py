"""TrendFlow training: three model families over the features library's training table.

``python -m training +exp=baseline|v1|v2`` (Hydra, conf/train.yaml) calls :func:`training.train.run`, which
returns ``(metrics, objects)``. Importing this package imports nothing heavy and has no side effects.
"""

__version__ = "1.0.0"
