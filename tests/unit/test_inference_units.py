"""Pure pieces of the service: request contract, A/B hashing, response blocks, config, schema, batching."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import pytest

from common.errors import ConfigError
from contract.output import QUANTILES
from inference.batching import MicroBatcher
from inference.config import load_config, parse_config
from inference.contract import FeatureContract
from inference.schemas import PredictResponse, quantile_block, request_schema
from inference.service import assign_bucket, unit_hash
from testsupport.jsonschema_lite import validate


@pytest.fixture(scope="module")
def contract() -> FeatureContract:
    from features import load_spec

    return FeatureContract.from_spec(load_spec())


def _full(contract: FeatureContract) -> dict[str, float]:
    return {c: 0.5 for c in contract.columns if c not in contract.masks}


def test_valid_row_follows_the_model_column_order(contract: FeatureContract) -> None:
    row, errors = contract.validate(_full(contract))
    assert errors == [] and row is not None
    assert list(row.values) == contract.columns
    assert all(row.values[m] == 1.0 for m in contract.masks)  # all present -> masks derived as 1
    assert row.imputed == []


def test_optional_absent_is_nan_with_mask_zero(contract: FeatureContract) -> None:
    m, cols = next(iter(contract.masks.items()))
    payload = _full(contract)
    for c in cols:
        payload[c] = None
    row, errors = contract.validate(payload)
    assert errors == [] and row is not None
    assert all(math.isnan(row.values[c]) for c in cols)
    assert row.values[m] == 0.0 and set(cols) <= set(row.imputed)


def test_every_bad_field_is_named(contract: FeatureContract) -> None:
    payload = _full(contract)
    crit = sorted(contract.critical)
    del payload[crit[0]]
    payload[crit[1]] = None
    payload[crit[2]] = "12"
    payload["not_a_feature"] = 1.0
    payload[next(iter(contract.masks))] = 0.5
    opt = next(c for c in contract.columns if c not in contract.critical and c not in contract.masks)
    payload[opt] = [1.0]
    row, errors = contract.validate(payload)
    assert row is None
    got = {(e.field, e.code) for e in errors}
    assert (f"features.{crit[0]}", "missing_critical_feature") in got
    assert (f"features.{crit[1]}", "missing_critical_feature") in got
    assert (f"features.{crit[2]}", "invalid_type") in got
    assert ("features.not_a_feature", "unknown_field") in got
    assert (f"features.{next(iter(contract.masks))}", "invalid_mask") in got
    assert (f"features.{opt}", "invalid_type") in got


def test_booleans_are_not_numbers_and_huge_or_nan_values_are_not_finite(contract: FeatureContract) -> None:
    payload = _full(contract)
    payload[sorted(contract.critical)[0]] = True
    assert contract.validate(payload)[1][0].code == "invalid_type"
    payload = _full(contract)
    payload[sorted(contract.critical)[0]] = 10**400
    payload[sorted(contract.critical)[1]] = float("nan")
    assert [e.code for e in contract.validate(payload)[1]] == ["not_finite", "not_finite"]
    payload = _full(contract)
    opt = next(c for c in contract.columns if c not in contract.critical and c not in contract.masks)
    payload[opt] = float("inf")
    row, errors = contract.validate(payload)
    assert errors == [] and row is not None and opt in row.imputed


def test_ab_assignment_is_stable_and_split_as_configured() -> None:
    arms = [("A", "v2", 0.8), ("B", "v1", 0.2)]
    first = {f"user-{i}": assign_bucket(f"user-{i}", arms, "exp1") for i in range(4000)}
    again = {k: assign_bucket(k, arms, "exp1") for k in first}
    assert first == again
    share = Counter(b for b, _ in first.values())["A"] / len(first)
    assert 0.77 < share < 0.83
    assert assign_bucket(None, arms, "exp1") == ("A", "v2")
    # another salt reshuffles users (independent experiments)
    other = {k: assign_bucket(k, arms, "exp2") for k in first}
    assert sum(first[k] != other[k] for k in first) > 400
    assert 0 <= unit_hash("x", "s") < 1 and unit_hash("x", "s") == unit_hash("x", "s")


def test_quantile_block_back_transforms_and_clips() -> None:
    row = {f"views_7d_{q}": v for q, v in zip(QUANTILES, [-0.5, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0], strict=True)}
    row["views_7d_confidence"] = 0.7
    b = quantile_block(row, "views_7d")
    assert b["p025"] == 0.0  # expm1(-0.5) < 0 clipped
    assert b["p50"] == pytest.approx(math.expm1(2.0))
    assert b["log1p"]["p50"] == 2.0 and b["confidence_score"] == 0.7


def test_config_validation_names_the_problem() -> None:
    cfg = load_config()
    assert cfg.chain == ["v2", "v1", "baseline"] and cfg.needs_triton
    base = cfg.model_dump()
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config({**base, "models": {**base["models"], "v2": {"type": "v2", "version": 3, "alias": "stable"}}})
    with pytest.raises(ConfigError, match="not defined"):
        parse_config({**base, "fallback": ["v1", "v9"]})
    with pytest.raises(ConfigError, match="primry"):
        parse_config({**base, "primry": "v2"})
    assert not parse_config({**base, "request_modes": ["features", "artifacts"]}).needs_triton


def test_request_schema_and_lite_validator(contract: FeatureContract) -> None:
    schema = request_schema(contract.columns, contract.critical, ["features", "video"], roots=["/srv"])
    assert validate({"features": _full(contract)}, schema) == []
    meta = {"platform_id": "yt", "video_id": "v", "published_at": "2026-10-01T00:00:00Z"}
    assert validate({"video_path": "/srv/x.mp4", "metadata": meta}, schema) == []
    assert validate({"video_path": "/srv/x.mp4", "metadata": {}}, schema)    # the service rejects it: so does this
    assert validate({"features": _full(contract), "metadata": meta}, schema)  # metadata only with video_path
    assert validate({"features": {}, "video_path": "/x"}, schema)            # two inputs
    assert validate({"features": {"zzz": 1}}, schema)                         # unknown + missing critical
    assert validate({"artifacts_dir": "/x"}, schema)                          # mode not enabled
    resp_schema = PredictResponse.model_json_schema()
    assert validate({"request_id": "x"}, resp_schema)


def test_batcher_batches_concurrent_rows_and_isolates_a_bad_one() -> None:
    calls: list[int] = []

    def predict(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        calls.append(len(rows))
        if any(r["x"] < 0 for r in rows):
            raise ValueError("negative")
        return [{"y": r["x"] * 2} for r in rows]

    async def main() -> list:
        b = MicroBatcher(predict, max_batch=8, max_wait_s=0.02)
        b.start()
        try:
            return await asyncio.gather(*(b.submit({"x": float(i - 1 if i == 3 else i)}) for i in range(6)),
                                        return_exceptions=True)
        finally:
            await b.close()

    results = asyncio.run(main())
    assert calls[0] == 6  # one batch for six concurrent requests
    ok = [r for r in results if not isinstance(r, Exception)]
    assert len(ok) == 6 and [r[0]["y"] for r in ok] == [0, 2, 4, 4, 8, 10]


def test_batcher_retries_rows_alone_when_the_batch_fails() -> None:
    def predict(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        if any(r["x"] < 0 for r in rows):
            raise ValueError("negative")
        return [{"y": r["x"]} for r in rows]

    async def main() -> list:
        b = MicroBatcher(predict, max_batch=8, max_wait_s=0.02)
        b.start()
        try:
            return await asyncio.gather(*(b.submit({"x": x}) for x in (1.0, -1.0, 2.0)), return_exceptions=True)
        finally:
            await b.close()

    r = asyncio.run(main())
    assert isinstance(r[1], ValueError)
    assert r[0][0] == {"y": 1.0} and r[2][0] == {"y": 2.0}
