"""The admin page in a real browser: Debian's Chromium, headless, driven by Playwright over real HTTP, against a
store filled by a real extraction run (the CLI, a real Triton) and ingested by `python -m observability ingest`.
Screenshots of each main page are saved under the test's tmp output for review."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.obs_support import REPO, env_with, real_extraction_run, real_serving_spool
from testsupport.postgres import free_port

pytestmark = pytest.mark.triton
TOKEN = "browser-test-token"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def admin(triton_server, tmp_path_factory):
    run = real_extraction_run(tmp_path_factory, triton_server.grpc_url)
    spool, _ = real_serving_spool(tmp_path_factory)
    page_dir = tmp_path_factory.mktemp("obs-page")
    shutil.copytree(spool, page_dir / "spool")
    (page_dir / "observability.yaml").write_text(f"spool_dir: {page_dir / 'spool'}\n")
    url = f"sqlite:///{page_dir / 'obs.db'}"
    env = env_with(TRENDFLOW_ADMIN_TOKEN=TOKEN)
    cli = [sys.executable, "-m", "observability", "--config", str(page_dir / "observability.yaml"), "--url", url]
    r = subprocess.run([*cli, "ingest", "--artifacts", str(run.artifacts)], capture_output=True, text=True, cwd=REPO,
                       env=env, timeout=120)
    assert r.returncode == 0 and "2 new" in r.stdout and "1 serving windows" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([*cli, "runs", "--kind", "extraction", "--since", "1d", "--json"], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["runs"][0]["run_key"] == f"extraction:{run.run_id}"
    r = subprocess.run([*cli, "component-stats", "--since", "24h"], capture_output=True, text=True, cwd=REPO,
                       env=env, timeout=120)
    assert r.returncode == 0 and "25.0%" in r.stdout and "visual" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([*cli, "alerts", "--once"], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 1 and "ComponentErrorRateHigh" in r.stdout, r.stdout + r.stderr  # the broken video
    port = free_port()
    proc = subprocess.Popen([*cli, "serve", "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
        assert proc.poll() is None, proc.stdout.read()
    else:
        proc.kill()
        pytest.fail("the admin page did not start within 60 s")
    yield base, run
    proc.terminate()
    proc.wait(timeout=20)


def test_pages_need_the_admin_token(admin) -> None:
    base, _ = admin
    assert httpx.get(f"{base}/").status_code == 401
    assert httpx.get(f"{base}/", headers={"Authorization": "Bearer wrong"}).status_code == 403
    ok = httpx.get(f"{base}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["total"] == 2, "the extraction run and the serving window"
    metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert 'trendflow_component_videos_total{component="frames",status="error"} 1' in metrics


def test_browse_runs_open_a_run_filter_and_screenshot(admin, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, run = admin
    shots = tmp_path / "screenshots"
    shots.mkdir()
    assert Path(CHROMIUM).exists(), "Debian's chromium is not installed: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/")
            assert "401" in page.inner_text("#auth-status"), "no token yet: the login form answers"
            page.fill("#token", "wrong")
            page.click("#login")
            assert "403" in page.inner_text("#auth-status")
            page.fill("#token", TOKEN)
            page.click("#login")
            page.wait_for_selector("#runs")
            assert page.inner_text("#total").startswith("2 runs")
            page.screenshot(path=str(shots / "runs.png"), full_page=True)

            page.click(f"a.run-link:has-text('extraction:{run.run_id}')")
            page.wait_for_selector("#components")
            assert page.inner_text("#run-title") == f"extraction:{run.run_id}"
            assert page.inner_text("#run-status") == "partial"
            table = page.inner_text("#components")
            for comp in ("frames", "visual", "faces", "audio", "text"):
                assert comp in table
            assert "video_decode_failed" in table and "visual_embed_fast_onnx:" in table
            assert page.inner_text("#measured").endswith(" s")
            page.screenshot(path=str(shots / "run.png"), full_page=True)

            page.goto(f"{base}/")
            page.select_option("#f-kind", "training")
            page.click("#apply")
            page.wait_for_selector("#total")
            assert page.inner_text("#total").startswith("0 runs") and "kind=training" in page.url
            page.select_option("#f-kind", "extraction")
            page.select_option("#f-status", "partial")
            page.click("#apply")
            assert page.inner_text("#total").startswith("1 runs") and page.locator("tr.run-row").count() == 1

            page.goto(f"{base}/components?since=24h")
            stats = page.inner_text("#component-stats")
            assert "visual" in stats and "25.0%" in stats, "frames fail on 1 of 4 videos"
            assert page.locator("#trend-visual svg").count() == 4
            page.screenshot(path=str(shots / "components.png"), full_page=True)

            page.goto(f"{base}/alerts")
            assert "ComponentErrorRateHigh" in page.inner_text("#firing")
            page.screenshot(path=str(shots / "alerts.png"), full_page=True)
            page.goto(f"{base}/serving")
            row = page.inner_text("tr.window-row")
            assert "127.0.0.1:test" in row and "\t20\t" in row and "model_load_failed" in row, row
            assert page.locator("svg.chart").count() == 4
            assert "Out of distribution" in page.inner_text("#windows")
            assert page.inner_text("tr.window-row td.ood").split()[0].isdigit(), "the window's OOD count"
            page.screenshot(path=str(shots / "serving.png"), full_page=True)
            page.goto(f"{base}/registry")
            loads = page.inner_text("#model-loads")
            assert "visual_embed_fast" in loads and "service:127.0.0.1:test" in loads, "checklist and service loads"
            assert "Bytes freed" in page.inner_text("#gc-runs"), "the GC runs section (none recorded in this store)"
            page.screenshot(path=str(shots / "registry.png"), full_page=True)
        finally:
            browser.close()
    saved = sorted(f.name for f in shots.glob("*.png"))
    assert saved == ["alerts.png", "components.png", "registry.png", "run.png", "runs.png", "serving.png"]
    assert all(f.stat().st_size > 5000 for f in shots.glob("*.png"))
