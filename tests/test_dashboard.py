"""The dashboard: pages and login through the test client, then the whole flow in a headless chromium
(log in, upload, train, watch the loss curve grow, generate) against a real server and worker.

The browser is Debian's chromium (apt-get install chromium) driven by playwright; playwright's own
browser downloads are never used. Without them the browser test is skipped, unless CI=true.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api import create_app
from models import Corpus
from tests.conftest import CI, REPO_ROOT
from tests.support import new_api_key, serve

CHROMIUM = os.environ.get("CHARQ_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = REPO_ROOT / "docs" / "job-page.png"


def new_key(settings) -> str:
    return new_api_key(settings.database, "dashboard")


def csrf(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def log_in(client, key: str, next_: str = "/"):
    return client.post("/login", data={"api_key": key, "next": next_,
                                       "csrf_token": csrf(client.get("/login"))})


# --- pages through the test client ------------------------------------------------------------

def test_pages_redirect_to_login(client):
    for path in ["/", "/jobs/1", "/models/1", "/corpora", "/jobs/new"]:
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login?next="), path
    assert client.get("/login").status_code == 200


def test_login_needs_a_valid_key_and_a_form_token(client, api_key):
    assert client.post("/login", data={"api_key": api_key}).status_code == 400  # no CSRF token
    r = client.post("/login", data={"api_key": "charq_wrong", "csrf_token": csrf(client.get("/login"))})
    assert r.status_code == 401 and "not valid" in r.get_data(as_text=True)
    r = log_in(client, api_key, "/corpora")
    assert r.status_code == 302 and r.headers["Location"] == "/corpora"
    page = client.get("/").get_data(as_text=True)
    assert f'<meta name="charq-api-key" content="{api_key}">' in page
    # The session cookie alone opens no API: /v1 reads only the Authorization header.
    assert client.get("/v1/training-jobs").status_code == 401
    assert log_in(client, api_key, "https://elsewhere.example/").headers["Location"] == "/"
    client.post("/logout", data={"csrf_token": csrf(client.get("/"))})
    assert client.get("/").status_code == 302


def test_form_errors_are_shown_and_nothing_is_written(client, api_key, sessions):
    log_in(client, api_key)
    token = csrf(client.get("/corpora"))
    r = client.post("/corpora", data={"name": "empty", "text": "", "csrf_token": token})
    assert r.status_code == 422 and "is empty" in r.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Corpus).where(Corpus.name == "empty")) == 0
    r = client.post("/jobs/new", data={"corpus_id": "999999", "hidden_size": "big", "csrf_token": token})
    assert r.status_code == 422 and "hyperparameters.hidden_size" in r.get_data(as_text=True)
    assert client.get("/jobs/999999").status_code == 404


def test_no_login_when_auth_is_disabled(settings):
    client = create_app(replace(settings, auth_enabled=False)).test_client()
    r = client.get("/")
    assert r.status_code == 200 and "charq-api-key" not in r.get_data(as_text=True)
    assert client.get("/login").headers["Location"] == "/"


def test_secret_key_is_made_once_and_kept(settings, tmp_path):
    first = create_app(replace(settings, data_dir=tmp_path)).secret_key
    again = create_app(replace(settings, data_dir=tmp_path)).secret_key
    assert first == again and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert create_app(replace(settings, secret_key="from-env")).secret_key == "from-env"


# --- the browser ------------------------------------------------------------------------------

def missing(why: str) -> None:
    if CI:
        pytest.fail(f"{why}; CI=true requires the browser test (.ci/run installs chromium)",
                    pytrace=False)
    pytest.skip(f"{why}: apt-get install -y chromium && pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing(f"chromium is not installed at {CHROMIUM}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(pg_settings):
    """The API on a real port, in a thread of this process."""
    with serve(create_app(pg_settings)) as url:
        yield url


@pytest.mark.slow
def test_train_and_generate_in_the_browser(browser, live_server, pg_settings, start_worker,
                                           tiny_corpus, tmp_path):
    start_worker(pg_settings, name="dashboard")
    page = browser.new_page(viewport={"width": 1100, "height": 860})
    page.set_default_timeout(30_000)

    page.goto(live_server + "/")
    assert "/login" in page.url
    page.fill("input[name=api_key]", new_key(pg_settings))
    page.click("button[type=submit]")
    page.wait_for_url(live_server + "/")

    page.goto(live_server + "/corpora")
    page.fill("#upload-form input[name=name]", "tiny")
    page.set_input_files("#upload-form input[name=file]", files=[{
        "name": "tiny.txt", "mimeType": "text/plain", "buffer": tiny_corpus.encode()}])
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/new\?corpus_id=\d+$"))

    for field, value in dict(hidden_size=32, layers=1, seq_len=16, batch_size=8, eval_every=3,
                             checkpoint_every=100_000).items():
        page.fill(f"#train-form input[name={field}]", str(value))
    # A few seconds of training however fast the machine: 60 steps can end between two polls.
    page.fill("#train-form textarea[name=more]", '{"max_steps": null, "time_budget_s": 5, '
              '"embedding_size": 16, "warmup_steps": 0, "progress_every_s": 0.1}')
    page.click("#train-form button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_url = page.url

    # The page polls every second: the plotted train-loss points must grow while it trains.
    seen, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.append(int(page.get_attribute("#loss-chart", "data-train-points")))
        if page.text_content("#status") in {"succeeded", "failed", "cancelled"}:
            break
        time.sleep(0.2)
    assert page.text_content("#status") == "succeeded"
    page.wait_for_function("document.querySelector('#loss-chart').dataset.trainPoints > 0")
    seen.append(int(page.get_attribute("#loss-chart", "data-train-points")))
    growth = sorted(set(n for n in seen if n > 0))
    assert len(growth) >= 2 and seen == sorted(seen), seen
    steps = page.text_content("#step")
    assert int(page.get_attribute("#loss-chart", "data-val-points")) >= 1, steps
    assert page.locator("#loss-chart polyline.train").count() == 1

    page.click("#model-link a")
    page.wait_for_url(re.compile(r"/models/\d+$"))
    page.fill("#generate-form input[name=prompt]", "the ")
    page.fill("#generate-form input[name=num_samples]", "3")
    page.fill("#generate-form input[name=max_length]", "40")
    page.click("#generate-form button[type=submit]")
    page.wait_for_url(re.compile(r"/models/\d+\?generation=\d+$"))
    page.wait_for_function("document.querySelectorAll('#samples li').length === 3", timeout=60_000)
    texts = page.locator("#samples pre").all_text_contents()
    assert all(t.startswith("the ") and len(t) == 44 for t in texts), texts
    page.wait_for_function("document.querySelector('#generation-status').textContent === 'succeeded'")

    page.goto(job_url)  # the job page now previews a sample of its model
    assert page.text_content("#sample-preview") in texts
    page.wait_for_function("document.querySelector('#loss-chart').dataset.valPoints >= 2")
    # CHARQ_UPDATE_SCREENSHOT=1 refreshes the README's picture of this page.
    screenshot = SCREENSHOT if os.environ.get("CHARQ_UPDATE_SCREENSHOT") else tmp_path / "job.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size < 200_000
    page.close()
