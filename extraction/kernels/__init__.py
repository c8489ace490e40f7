"""Pure compute kernels called by the Triton models in ``model_repository/``.

Each module is plain numpy / torch / OpenCV: no Triton imports and no side effects at import, so the
same functions run in unit tests on tiny arrays and inside a Triton python-backend ``model.py``.

A kernel module may define ``asset_files() -> list[tuple[str, Path]]`` naming the external files
(weights, cascades) its outputs depend on; :mod:`extraction.model_repo` folds them into the model's
``weights_digest`` together with the module's source.
"""
