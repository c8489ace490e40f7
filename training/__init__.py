"""TrendFlow training: three model families over the features library's training table.

``python -m training +exp=baseline|v1|v2`` (Hydra, conf/train.yaml) calls :func:`training.train.run`, which
returns a :class:`training.train.TrainResult` (``metrics, result = run(cfg)``). Importing this
package imports nothing heavy and has no side effects.

Layout:

* ``train.py``: ``run`` -- load and split (``data.py``), fit and score (``families``), calibrate
  (``intervals.py``), evaluate (``metrics.py``), track and register (``tracking.py``, ``describe.py``, ``plots.py``).
* ``families/``: everything per model family -- the registry mapping a kind to its family (``__init__``), the tree
  cores (``baseline.py``), the network cores (``networks.py``) and their ``nn.Module``s (``nn/``: no I/O), and the
  cross-conformal fold ensemble (``ensemble.py``).
* ``model.py``: the trained artifact every family produces (core + calibration + manifest), what the pyfunc
  (``pyfunc.py``) loads.
"""

__version__ = "1.0.0"
