"""TrendFlow inference service: serves pinned registered model versions over HTTP.

Importable API (``python -m inference`` only composes these):
    load_config(path=None) -> InferenceConfig             conf/inference.yaml, validated
    build_service(cfg) -> Service                          the HTTP-independent core (fallback, A/B, shadow)
    create_app(service) -> FastAPI                         routes /predict, /health/*, /admin/reload, /metrics
    ServerThread(cfg) / ServerProcess(config_path)         real uvicorn on a free port (tests, demo, benchmark)
    run_demo(video_path, metadata=None)                    the main job's serving step (inference.demo)
    PathPolicy / check_video / Limits (inference.access)  allowed roots, request limits (issue 18)
    annotate / DistributionCache (inference.ood)           out-of-distribution warning and confidence rule

Importing this package has no side effects and does not import mlflow, torch or FastAPI.
"""

from inference.config import InferenceConfig, load_config

__all__ = ["InferenceConfig", "load_config"]
