"""A GPU model repository generated from the CPU one: ``KIND_GPU`` instances per device list, precision per model.

``python -m extraction.gpu_repo --devices 0,1 --out .trendflow/model_repository_gpu [--precision visual=fp16]``
copies ``model_repository/`` and rewrites the ``config.pbtxt`` of every model that computes on a GPU
(:data:`GPU_ENGINES`: the torch and sentence-transformers models) to one ``KIND_GPU`` instance group per listed
device and that device's engine string; the CPU-only models (OpenCV Haar, Farneback flow, numpy audio) keep
``KIND_CPU``. The copy's ``weights_digest`` is unchanged: placement is not part of what a model computes, and the
``engine`` and ``precision`` parameters -- which the provider records in every artifact's meta and which enter the
model signature -- tell GPU artifacts apart from CPU ones.

Precision: ``fp32`` everywhere unless asked; ``fp16`` only for models listed in :data:`FP16_VALIDATED` (a model
enters it when ``python -m benchmarks.extraction --device cuda`` measured its fp16 outputs within tolerance of
fp32 on a GPU); anything else is refused (``config_invalid``) rather than served unchecked.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from common.errors import ConfigError
from extraction.model_repo import DEFAULT_MODEL_REPOSITORY

GPU_ENGINES: dict[str, str] = {
    "visual_embed_fast": "torch-2.13-cuda",
    "visual_embed_quality": "torch-2.13-cuda",
    "text_embed": "sentence-transformers-cuda",
}
# Models whose fp16 outputs were measured against fp32 on a GPU (none yet: no GPU machine has run the check).
FP16_VALIDATED: frozenset[str] = frozenset()
_GROUP_RE = re.compile(r"^instance_group\s*\[.*\]\s*$", re.M)


def _param_re(key: str) -> re.Pattern[str]:
    return re.compile(r'(parameters:\s*\{\s*key:\s*"' + key + r'"\s*value:\s*\{\s*string_value:\s*")([^"]*)(")')


def gpu_config(text: str, model: str, devices: Sequence[int], precision: str = "fp32") -> str:
    """``config.pbtxt`` text of ``model`` with one ``KIND_GPU`` instance per device, its GPU engine and precision.

    Raises:
        ConfigError: no device, a model without a GPU engine, or an unvalidated precision.
    """
    if not devices:
        raise ConfigError("a GPU repository needs at least one device index")
    if model not in GPU_ENGINES:
        raise ConfigError(f"{model} has no GPU variant (GPU models: {sorted(GPU_ENGINES)})")
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"{model}: precision {precision!r} is not one of fp32, fp16")
    if precision == "fp16" and model not in FP16_VALIDATED:
        validated = sorted(FP16_VALIDATED) or "none"
        raise ConfigError(f"{model}: fp16 is not validated against fp32 (validated: {validated}); "
                          "run `python -m benchmarks.extraction --device cuda` on a GPU machine first")
    groups = ", ".join(f"{{ kind: KIND_GPU, count: 1, gpus: [ {int(d)} ] }}" for d in devices)
    new, n = _GROUP_RE.subn(f"instance_group [ {groups} ]", text)
    if n != 1:
        raise ConfigError(f"{model}: expected one instance_group line in config.pbtxt, found {n}")
    for key, value in (("engine", GPU_ENGINES[model]), ("precision", precision)):
        new, n = _param_re(key).subn(lambda m, v=value: m.group(1) + v + m.group(3), new)
        if n != 1:
            raise ConfigError(f"{model}: expected one {key!r} parameter in config.pbtxt, found {n}")
    return new


def write_gpu_repository(out: Path, devices: Sequence[int], precision: Mapping[str, str] | None = None,
                         repo: Path = DEFAULT_MODEL_REPOSITORY) -> list[str]:
    """Copy ``repo`` to ``out`` (replacing it) with GPU configs for :data:`GPU_ENGINES`; returns those models."""
    precision = dict(precision or {})
    unknown = sorted(set(precision) - set(GPU_ENGINES))
    if unknown:
        raise ConfigError(f"precision given for models without a GPU variant: {unknown}")
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(repo, tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    changed = []
    for model in sorted(GPU_ENGINES):
        cfg = tmp / model / "config.pbtxt"
        if cfg.exists():
            cfg.write_text(gpu_config(cfg.read_text(), model, devices, precision.get(model, "fp32")))
            changed.append(model)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the repository appears whole or not at all
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m extraction.gpu_repo", description=__doc__.splitlines()[0])
    ap.add_argument("--devices", required=True, help="GPU indices, e.g. 0 or 0,1")
    ap.add_argument("--out", type=Path, required=True, help="folder to write the GPU repository to")
    ap.add_argument("--precision", action="append", default=[], metavar="MODEL=fp16",
                    help="precision of one model (default fp32)")
    ap.add_argument("--repo", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    args = ap.parse_args(argv)
    try:
        devices = [int(d) for d in args.devices.split(",") if d.strip()]
        precision = dict(p.split("=", 1) for p in args.precision)
        changed = write_gpu_repository(args.out, devices, precision, args.repo)
    except (ConfigError, ValueError) as exc:
        print(f"error: config_invalid: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: KIND_GPU on {devices} for {', '.join(changed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
