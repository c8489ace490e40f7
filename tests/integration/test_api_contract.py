"""The API contract: what /openapi.json promises is what the running service does.

``/schema`` and ``/openapi.json`` agree (request, response and error schemas, once ``$ref``s are resolved), every
route declares the content types it answers, and schemathesis (its CLI, as a new user would run it) fuzzes the
whole API of a real uvicorn + real MLflow store with ``--checks all`` and every phase (the stateful phase finds no
links between operations here: the API creates no resources) and finds nothing: no 5xx, no schema violation, no
undocumented status or content type, no valid request rejected, no invalid one accepted. Bounded by
``--max-examples`` (about a minute on 2 cores).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from inference.config import parse_config
from inference.server import ServerThread
from registry import ops
from tests.conftest import RegistryStore
from testsupport.artifacts import fabricate_one

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "contract-admin-token"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("contract")
    store = RegistryStore(tmp / "mlflow")
    assert ops.promote(store.client, store.cfg, "baseline", store.log("baseline").version.version, "contract").ok
    root = tmp / "root"
    fabricate_one(root, seed=0, i=3)  # one real run folder under the allowed root
    (tmp / "token").write_text(TOKEN)
    raw = yaml.safe_load((ROOT / "conf" / "inference.yaml").read_text())
    raw.update(registry=str(store.config_path), request_modes=["features", "artifacts"], shadow=None,
               models={"baseline": {"type": "baseline", "alias": "stable"}}, primary="baseline", fallback=[],
               allowed_roots=[str(root)], admin={"token_env": "TRENDFLOW_TEST_UNSET", "token_file": str(tmp / "token")})
    with ServerThread(parse_config(raw)) as srv, httpx.Client(base_url=srv.url, timeout=60) as http:
        srv.http, srv.tmp, srv.root = http, tmp, root
        yield srv


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` (into ``#/components/...`` or ``#/$defs/...``) replaced by its target."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(target, root)
        return {k: _resolve(v, root) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


def test_schema_and_openapi_agree(api) -> None:
    published = api.http.get("/schema").json()
    doc = api.http.get("/openapi.json").json()
    predict = doc["paths"]["/predict"]["post"]
    assert _resolve(predict["requestBody"]["content"]["application/json"]["schema"], doc) == published["request"]
    ok = predict["responses"]["200"]["content"]["application/json"]["schema"]
    assert _resolve(ok, doc) == _resolve(published["response"], published["response"])
    for status in ("404", "413", "415", "422", "503"):
        err = predict["responses"][status]["content"]["application/json"]["schema"]
        assert _resolve(err, doc) == _resolve(published["error"], published["error"]), status
    assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert {"401", "403"} <= set(doc["paths"]["/admin/reload"]["post"]["responses"])
    assert doc["paths"]["/admin/reload"]["post"]["security"] == [{"HTTPBearer": []}]
    assert set(doc["paths"]["/health/ready"]["get"]["responses"]) >= {"200", "503"}


def test_the_request_schema_says_exactly_what_predict_accepts(api) -> None:
    """oneOf the modes, each with its own required fields: the issue's `{"metadata": {}, "video_path": ""}` is
    invalid by the schema (video mode is off here) and rejected by the service; each valid shape is answered."""
    schema = api.http.get("/schema").json()["request"]
    check = jsonschema.Draft202012Validator(schema)
    assert [b["title"] for b in schema["oneOf"]] == ["features mode", "artifacts mode"]
    assert {b["title"]: b["required"] for b in schema["oneOf"]} == {"features mode": ["features"],
                                                                    "artifacts mode": ["artifacts_dir"]}
    assert all(b["additionalProperties"] is False for b in schema["oneOf"])
    run = next(api.root.rglob("manifest.json")).parent
    valid = [{"artifacts_dir": str(run)}, {"artifacts_dir": str(api.root / "missing")}]
    invalid = [{"metadata": {}, "video_path": ""}, {"artifacts_dir": str(run), "metadata": {}},
               {"artifacts_dir": str(api.root / ".." / "x")}, {"artifacts_dir": "relative"}, {"request_id": 3},
               {"artifacts_dir": str(run), "features": {}}]
    for body in valid:
        assert check.is_valid(body), body
        assert api.http.post("/predict", json=body).status_code in (200, 404), body
    for body in invalid:
        assert not check.is_valid(body), body
        r = api.http.post("/predict", json=body)
        assert r.status_code == 422 and r.json()["error_code"], (body, r.text)
    feats = schema["oneOf"][0]["properties"]["features"]
    assert feats["additionalProperties"] is False and feats["required"]


def test_schemathesis_over_the_whole_api_finds_nothing(api) -> None:
    exe = Path(sys.executable).parent / "schemathesis"
    assert exe.exists(), f"{exe} missing: install the test extra (pip install -e '.[test]')"
    cmd = [str(exe), "run", f"{api.url}/openapi.json", "--checks", "all", "--phases",
           "examples,coverage,fuzzing,stateful", "--max-examples", "40", "--seed", "18", "--workers", "1",
           "--request-timeout", "30", "-H", f"Authorization: Bearer {TOKEN}", "--no-color"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=api.tmp)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert "6 selected / 6 total" in out and "failed" not in out.split("SUMMARY")[-1], out[-3000:]
    print(out[-1500:])
