"""The dashboard at `/` in a real browser (Playwright driving Debian's Chromium; no download)
against a real daemon: pools and running tasks, live updates, actions with and without the
token, and no request to any other host."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.daemons import run_ygg
from tests.support.hosts import FakeHost
from tests.support.telemetry import GB, ollama_ps
from tests.support.web import TOKEN, WebDaemon, web_daemon
from ygg.store import open_store
from ygg.store.model import now_us

CHROMIUM = "/usr/bin/chromium"
POOLS = (
    '\n[pools.gpu]\nbackend = "sim"\nseconds = 60\nslots = 2\nkinds = ["general"]\n'
    '\n[pools.cloud]\nbackend = "sim"\nseconds = 0\nslots = 1\nkinds = ["cheap"]\n'
)
WAIT_MS = 15_000

if not os.path.exists(CHROMIUM):
    why = "needs Debian's chromium (apt-get install chromium)"
    if os.environ.get("YGG_TEST_BROWSER") == "1":  # .ci/run: the tier is required
        pytest.fail(f"YGG_TEST_BROWSER=1 but the browser tests {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebDaemon]:
    with web_daemon(tmp_path, POOLS) as daemon:
        yield daemon
        with daemon.client() as http:  # the 60 s tasks would hold the stop
            for status in ("waiting", "queued", "running"):  # queued first: none starts now
                for task in http.get(f"/api/tasks?status={status}").json():
                    http.post(f"/api/tasks/{task['id']}/cancel")


@pytest.fixture
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(
    browser: sync_api.Browser, web: WebDaemon, answer: str | None
) -> tuple[sync_api.Page, list[str]]:
    """A fresh tab on the dashboard; every request it makes is recorded; `answer` is what the
    user types when the page asks for the token."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    hosts: list[str] = []

    def record(route: sync_api.Route) -> None:
        hosts.append(urlsplit(route.request.url).netloc)
        if urlsplit(route.request.url).netloc == urlsplit(web.base).netloc:
            route.continue_()
        else:
            route.abort()

    page.route("**/*", record)
    page.on("dialog", lambda dialog: dialog.accept(answer) if answer else dialog.dismiss())
    page.goto(web.base + "/")
    return page, hosts


def test_pools_running_tasks_and_live_updates(
    web: WebDaemon, browser: sync_api.Browser, tmp_path: Path
) -> None:
    first = int(run_ygg(web.config, "submit", "first long job").stdout.split()[0])
    page, hosts = open_page(browser, web, TOKEN)
    expect = sync_api.expect
    expect(page.locator('[data-pool="gpu"]')).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('[data-pool="cloud"]')).to_be_visible()
    expect(page.locator('[data-pool="gpu"] .slot.busy')).to_contain_text(
        "first long job", timeout=WAIT_MS
    )
    expect(page.locator('[data-pool="gpu"] .slot.busy')).to_contain_text("attempt 1")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    # Submitted from the CLI: the page shows it without a reload.
    run_ygg(web.config, "submit", "second long job")
    expect(page.locator('[data-pool="gpu"] .slot.busy')).to_have_count(2, timeout=WAIT_MS)
    run_ygg(web.config, "submit", "--kind", "cheap", "quick one")
    expect(page.locator("#recent-rows")).to_contain_text("quick one", timeout=WAIT_MS)
    # Its usage as the sim host tells it: no prompt in, one token out, at once.
    quick = page.locator("#recent-rows tr", has_text="quick one")
    expect(quick.locator("td.usage")).to_have_text("0 in / 1 out · first token 0 ms")
    run_ygg(web.config, "submit", "third waits")
    expect(page.locator("#queue-rows")).to_contain_text("third waits", timeout=WAIT_MS)
    # The timeline: the running task as a bar in a lane of its pool, the quick one finished.
    lane_bar = f'#timeline-chart g.lane[data-lane-pool="gpu"] rect.bar.running[data-task="{first}"]'
    expect(page.locator(lane_bar)).to_have_count(1, timeout=WAIT_MS)
    assert page.locator('#timeline-chart g.lane[data-lane-pool="gpu"]').count() == 2  # its slots
    quick_bar = '#timeline-chart g.lane[data-lane-pool="cloud"] rect.bar.done'
    expect(page.locator(quick_bar)).to_have_count(1, timeout=WAIT_MS)
    # The last hour: two small charts per pool, bars for each five minutes.
    for pool in ("gpu", "cloud"):
        charts = page.locator(f'#hour-charts [data-hour-pool="{pool}"] svg.hour-chart')
        expect(charts).to_have_count(2, timeout=WAIT_MS)
        assert charts.first.locator("rect").count() == 12
    finished = '#hour-charts [data-hour-pool="cloud"] svg.hour-chart rect[data-value="1"]'
    expect(page.locator(finished).first).to_be_attached(timeout=WAIT_MS)  # the quick one
    # YGG_DASHBOARD_SCREENSHOT=docs/dashboard.png renews the README's picture.
    shot = os.environ.get("YGG_DASHBOARD_SCREENSHOT") or tmp_path / "page.png"
    page.screenshot(path=shot, full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than it
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    assert set(hosts) == {urlsplit(web.base).netloc}, hosts


def test_cancel_and_retry_need_the_token(web: WebDaemon, browser: sync_api.Browser) -> None:
    with web.client() as http:
        for title in ("one", "two", "three"):
            http.post("/api/tasks", json={"title": title})  # two run, the third waits
        queued = http.get("/api/tasks?status=queued").json()[0]

    def status() -> str:
        with web.client() as http:
            return str(http.get(f"/api/tasks/{queued['id']}").json()["status"])

    expect = sync_api.expect
    row = f'#queue-rows tr[data-task="{queued["id"]}"]'
    page, hosts = open_page(browser, web, TOKEN)  # reads need the token too: it is asked once
    expect(page.locator(row)).to_be_visible(timeout=WAIT_MS)
    page.evaluate("sessionStorage.setItem('ygg-token', 'not-the-token')")
    page.locator(row + " button").click()
    expect(page.locator("#message")).to_contain_text("token was refused", timeout=WAIT_MS)
    assert status() == "queued"
    assert page.evaluate("sessionStorage.getItem('ygg-token')") is None  # asked again next time

    page.locator(row + " button").click()  # the page asks; the right token is given
    retry = f'#recent-rows tr[data-task="{queued["id"]}"]'
    expect(page.locator(retry)).to_contain_text("cancelled", timeout=WAIT_MS)
    assert status() == "cancelled"
    page.locator(retry + " button").click()
    expect(page.locator(row)).to_be_visible(timeout=WAIT_MS)
    assert status() == "queued"
    assert page.evaluate("sessionStorage.getItem('ygg-token')") == TOKEN
    assert page.context.cookies() == []
    assert set(hosts) == {urlsplit(web.base).netloc}, hosts


def test_each_pool_row_shows_what_its_host_says(tmp_path: Path, browser: sync_api.Browser) -> None:
    with FakeHost("ollama") as ollama, FakeHost("openai") as silent:
        ollama.serve("/api/ps", ollama_ps(("qwen2.5-coder:7b", 6 * GB, 3 * GB)))
        pools = (
            f'\n[pools.gpu]\nbackend = "ollama"\nurl = "{ollama.url}"\nmodel = "m"\n'
            f'kinds = ["general"]\n\n[pools.cloud]\nbackend = "openai"\n'
            f'url = "{silent.url}/v1"\nmodel = "m"\nkinds = ["cheap"]\n'
        )
        with web_daemon(tmp_path, pools, daemon="telemetry_seconds = 0.2") as web:
            page, _ = open_page(browser, web, TOKEN)
            expect = sync_api.expect
            host = page.locator('[data-pool="gpu"] .host')
            expect(host).to_contain_text("qwen2.5-coder:7b 50% in GPU memory", timeout=WAIT_MS)
            expect(host.locator(".sat")).to_contain_text("model qwen2.5-coder:7b spills")
            expect(host.locator(".warn")).to_have_text(
                "warning: model qwen2.5-coder:7b runs 50% on the CPU (3.0 GB of 6.0 GB in GPU "
                "memory)"
            )
            expect(page.locator('[data-pool="cloud"]')).to_be_visible()
            expect(page.locator('[data-pool="cloud"] .host')).to_have_count(0)
            # The host's load changes; the page follows (its safety refresh, at the latest).
            ollama.serve("/api/ps", ollama_ps(("qwen2.5-coder:7b", 6 * GB, 6 * GB)))
            expect(host).to_contain_text("100% in GPU memory", timeout=WAIT_MS + 15_000)
            expect(host.locator(".warn")).to_have_count(0)


def test_each_pool_row_shows_its_limit(tmp_path: Path, browser: sync_api.Browser) -> None:
    # An adaptive pool starts at its floor: 1 of its 4 slots, the other 3 unavailable.
    pools = (
        '\n[pools.wide]\nbackend = "sim"\nseconds = 0\nslots = 4\nadaptive = true\n'
        'min_slots = 1\nkinds = ["wide"]\n'
        '\n[pools.fixed]\nbackend = "sim"\nseconds = 0\nslots = 2\nkinds = ["general"]\n'
    )
    with web_daemon(tmp_path, pools) as web:
        page, _ = open_page(browser, web, TOKEN)
        expect = sync_api.expect
        wide = page.locator('[data-pool="wide"]')
        expect(wide.locator(".limit")).to_have_text("limit 1 of 4 (adaptive)", timeout=WAIT_MS)
        expect(wide.locator(".slot.off")).to_have_count(3)
        expect(wide.locator(".slot:not(.off)")).to_have_count(1)
        fixed = page.locator('[data-pool="fixed"]')
        expect(fixed.locator(".limit")).to_have_text("limit 2 of 2 (config)")
        expect(fixed.locator(".slot.off")).to_have_count(0)
        expect(page.locator(".disagree")).to_have_count(0)
        # Another daemon on the queue, whose file gives `fixed` 5 slots: the row warns.
        store = open_store(str(tmp_path / "queue.db"))
        try:
            other = store.register_daemon("elsewhere", 4242, now_us(), "", "async", now_us())
            store.declare_slots(other, {"fixed": 5})
        finally:
            store.close()
        expect(fixed.locator(".disagree")).to_contain_text(
            f"daemon {other} has slots = 5", timeout=WAIT_MS + 15_000
        )
        expect(wide.locator(".disagree")).to_have_count(0)
        # A streamed answer's usage, as a recent task's row words it.
        shown = page.evaluate(
            "usage({tokens_in: 5, tokens_out: 6, first_token_s: 1.5, tokens_per_s: 12.345})"
        )
        assert shown == "5 in / 6 out · first token 1.5 s · 12.3 tokens/s"
        assert page.evaluate("usage({tokens_in: null, tokens_out: null})") == ""
