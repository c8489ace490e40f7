"""Champion/challenger re-scoring: compare a candidate with the stable on rows neither has seen.

The metrics gate compares the metrics each run logged, which only means something on the same test split. When
the splits differ (the corpus grew, the split fractions changed), this module re-scores both versions itself:

1. rebuild the candidate's split from its run (``config/resolved.yaml`` through :func:`training.data.load_split`)
   and check it reproduces the recorded ``split_hash`` (the table must not have changed since training);
2. keep the candidate's test rows published at or after the stable's test cut (``split/split.json`` of the stable's
   run): by the time split, the stable never trained, validated or calibrated on them, and the candidate never
   saw its own test rows;
3. load both registered versions through MLflow (the pyfunc contract: ``T_p50`` per target) and compute the
   gate's metrics (``test/mae_<target>``) for both on those rows.

It refuses, with the reason, when any step cannot be done honestly: no resolved config, a table that changed, a
different time column, fewer than ``gates.rescore_min_rows`` common unseen rows, a metric it cannot recompute.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from contract.output import TARGETS

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from registry.config import RegistryConfig


class RescoreRefused(Exception):
    """The two versions cannot be compared on common unseen rows; the message says why."""


def _run_text(client: MlflowClient, run_id: str, artifact: str) -> str:
    with tempfile.TemporaryDirectory(prefix="trendflow-rescore-") as tmp:
        try:
            local = client.download_artifacts(run_id, artifact, tmp)
        except Exception as exc:
            raise RescoreRefused(f"run {run_id[:8]} has no {artifact} artifact ({type(exc).__name__})") from None
        return Path(local).read_text()


def common_unseen_rows(client: MlflowClient, cand_run: str, stable_run: str,
                       split_hash: str | None) -> tuple[pd.DataFrame, Any, dict[str, Any]]:
    """The candidate's test rows published at or after the stable's test cut, with the candidate's columns.

    Returns:
        ``(rows, cols, info)``: the frame, the candidate's :class:`training.data.Columns` and what was used
        (table path, both cuts, row counts).
    """
    from training.config import validate
    from training.data import load_split

    if not split_hash:
        raise RescoreRefused("the candidate run records no split_hash to check its rebuilt split against")
    resolved = yaml.safe_load(_run_text(client, cand_run, "config/resolved.yaml"))
    try:
        table = load_split(validate(resolved))
    except (FileNotFoundError, ValueError) as exc:
        raise RescoreRefused(f"cannot rebuild the candidate's split: {exc}") from None
    if table.record["split_hash"] != split_hash:
        raise RescoreRefused(f"{table.path} no longer reproduces the candidate's split (split_hash "
                             f"{table.record['split_hash']} != recorded {split_hash}): the table changed since "
                             f"training")
    stable_split = json.loads(_run_text(client, stable_run, "split/split.json"))
    time_column = table.record["time_column"]
    if stable_split.get("time_column") != time_column or not stable_split.get("cuts"):
        raise RescoreRefused(f"the stable's split is by {stable_split.get('time_column')!r}, the candidate's by "
                             f"{time_column!r}: no common notion of 'unseen'")
    stable_cut = pd.Timestamp(stable_split["cuts"][-1])
    test = table.parts["test"]
    rows = test[test[time_column] >= stable_cut].reset_index(drop=True)  # load_table made the column UTC
    info = {"table": str(table.path), "stable_test_cut": str(stable_cut),
            "candidate_test_cut": table.record["cuts"][-1], "candidate_test_rows": int(len(test)),
            "rows": int(len(rows))}
    return rows, table.cols, info


def score_version(name: str, version: str, rows: pd.DataFrame, cols: Any) -> dict[str, float]:
    """Point metrics (``mae_<target>`` ...) of a registered version on ``rows``, through its pyfunc."""
    import mlflow.pyfunc

    from training.metrics import point_metrics

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    schema = model.metadata.get_input_schema()
    inputs = schema.input_names() if schema is not None else list(cols.features)
    missing = [c for c in inputs if c not in rows.columns]
    if missing:
        raise RescoreRefused(f"{name} v{version} needs input columns the candidate's table lacks: {missing[:8]}")
    out = model.predict(rows[inputs].astype(np.float64))
    labels = [lab for lab in cols.labels if lab in TARGETS]
    mu = np.column_stack([np.asarray(out[f"{lab}_p50"], dtype=np.float64) for lab in labels])
    y = rows[[t for t, lab in zip(cols.targets, cols.labels, strict=True) if lab in TARGETS]].to_numpy(np.float64)
    return point_metrics(y, mu, labels)


def rescore(client: MlflowClient, cfg: RegistryConfig, cand: ModelVersion, stable: ModelVersion,
            split_hash: str | None) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """Both versions' gate metrics on the common unseen rows: ``(candidate, stable, info)``.

    ``split_hash``: what the candidate's run recorded; the rebuilt split must reproduce it.

    Raises:
        RescoreRefused: naming why no honest comparison is possible.
    """
    from registry.store import version_run_id

    rows, cols, info = common_unseen_rows(client, version_run_id(cand), version_run_id(stable), split_hash)
    if len(rows) < cfg.gates.rescore_min_rows:
        raise RescoreRefused(f"only {len(rows)} of the candidate's {info['candidate_test_rows']} test rows were "
                             f"published after stable v{stable.version}'s test cut {info['stable_test_cut']} "
                             f"(gates.rescore_min_rows={cfg.gates.rescore_min_rows})")
    scores = {v: score_version(cand.name, v, rows, cols) for v in (cand.version, stable.version)}
    want = {m: m.split("/", 1)[-1] for m in cfg.gates.metrics}
    lacking = [m for m, k in want.items() if k not in scores[cand.version]]
    if lacking:
        raise RescoreRefused(f"cannot recompute {lacking} on the common rows (point metrics only)")
    pick = {v: {m: s[k] for m, k in want.items()} for v, s in scores.items()}
    return pick[cand.version], pick[stable.version], info
