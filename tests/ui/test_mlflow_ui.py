"""What a user sees in MLflow 3.17's UI on demo-like data, checked in a real headless Chromium (Debian's `chromium`,
installed by `make browser`, driven by Playwright's Python package; never `playwright install`).

The Overview's cost breakdown lists every priced model group and not the one LiteLLM could not price; the Traces
list, grouped by session, lists the sessions the clients sent; the trace name column shows model groups and the tag
columns are only team, key, end user and org. After the rollup (the local stack's periodic task, closing the open hour
as the demo does), the summary runs are training runs, not evaluation runs, and a model group's hourly chart has
hour indexes on its step axis (the per-call points before had steps ~1e15).

Screenshots go to the test's temporary directory, or to docs/images/ (what the README shows) with
LITELLM_MLFLOW_UPDATE_SCREENSHOTS=1, so a test run leaves the tree clean.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from litellm_mlflow.local.periodic_rollup import PeriodicRollup
from litellm_mlflow.local.servers import MlflowServer
from litellm_mlflow.local.wiring import UNPRICED_MODEL_GROUP
from tests.support.demo_calls import demo_payloads
from tests.support.litellm_events import sqs_event, sqs_record

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CHROMIUM = Path(os.environ.get("LITELLM_MLFLOW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
README_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
PRICED_GROUPS = ("claude-sonnet", "gpt-4o", "gpt-4o-mini", "tools")
TAG_COLUMNS = {"end_user", "key_alias", "org_alias", "org_id", "team_alias", "team_id"}
TIMEOUT_MS = 60_000
EARLIER_HOURS = 3


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """This module's own server: the screenshots use the deployment's default experiment name, which other tests
    of the session may also write to (the rollup below must read exactly this module's calls)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-ui"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def experiment_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """The deployment's default experiment name, so the screenshots read as a user's would."""
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "litellm-monitoring")
    return "litellm-monitoring"


@pytest.fixture
def demo_experiment(consumer, mlflow_server, experiment_name, litellm_capture) -> tuple[str, list]:
    """Demo-like traffic stored by the real consumer in the session's MLflow 3.17 server: (experiment URL, plans)."""
    plans, payloads = demo_payloads(litellm_capture, count=24)
    assert consumer(sqs_event([sqs_record(payload) for payload in payloads])) == {"batchItemFailures": []}
    experiment_id = MlflowClient(mlflow_server.url).get_experiment_by_name(experiment_name).experiment_id
    return f"{mlflow_server.url}/#/experiments/{experiment_id}", plans, payloads


@pytest.fixture
def page(tmp_path):
    """A fresh Chromium profile, 1920x1000, with MLflow's first-visit popups (assistant panel, guidance) closed."""
    assert CHROMIUM.exists() and shutil.which(str(CHROMIUM)), f"{CHROMIUM} missing: run `make browser`"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1920, "height": 1000},
        )  # fmt: skip
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()


def earlier_hours(payloads: list[dict], hours: int) -> list[dict]:
    """Copies of some of the calls, 1..`hours` hours earlier (fewer the earlier), as other calls: the summaries get a
    few hours to chart."""
    copies = []
    for back in range(1, hours + 1):
        for payload in payloads[: len(payloads) * (hours + 1 - back) // (hours + 1)]:
            copy = dict(payload)
            for name in ("id", "litellm_call_id"):
                if copy.get(name):
                    copy[name] = f"{copy[name]}-{back}h"
            for name in ("startTime", "endTime", "completionStartTime"):
                if isinstance(copy.get(name), (int, float)):
                    copy[name] -= 3600 * back
            copies.append(copy)
    return copies


def step_ticks(chart) -> list[float]:
    """The step axis' tick labels of a chart (plotly writes 499,052 as "499.052k")."""
    labels = chart.locator("g.xtick text").all_text_contents()
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
    return [float(label[:-1]) * scale[label[-1]] if label[-1] in scale else float(label) for label in labels]


def open_view(page, url: str, ready_text: str) -> None:
    page.goto(url)
    page.get_by_text(ready_text).first.wait_for()
    for name in ("Got it", "Close"):
        button = page.get_by_role("button", name=name, exact=True)
        if button.count() and button.first.is_visible():
            button.first.click()


def cost_breakdown_card(page):
    """The Overview's "Cost Breakdown" card (the nearest enclosing element listing per-model shares), once loaded."""
    title = page.get_by_text("Cost Breakdown", exact=True).first
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for depth in range(1, 8):
            candidate = title.locator(f"xpath=ancestor::*[{depth}]")
            text = candidate.inner_text()
            if "Cost Over Time" in text:
                break
            if any(line.endswith("%") for line in text.splitlines()):
                return candidate
        page.wait_for_timeout(250)
    raise AssertionError("the Overview's Cost Breakdown card never listed a model")


def test_overview_sessions_trace_list_and_summary_charts_show_the_demo(
    demo_experiment, page, tmp_path, consumer, mlflow_server, experiment_name
):
    experiment_url, plans, payloads = demo_experiment
    screenshots = README_IMAGES if os.environ.get("LITELLM_MLFLOW_UPDATE_SCREENSHOTS") == "1" else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)

    open_view(page, experiment_url, "Cost Breakdown")  # the experiment opens on its Overview
    card = cost_breakdown_card(page)
    shares = {line.rstrip("%0123456789.<") for line in card.inner_text().splitlines() if line.endswith("%")}
    assert shares == set(PRICED_GROUPS), f"cost breakdown lists {sorted(shares)}"
    assert UNPRICED_MODEL_GROUP not in shares  # its cost is unknown, not $0
    card.scroll_into_view_if_needed()
    card.screenshot(path=screenshots / "overview-cost-breakdown.png")
    token_usage = page.get_by_text("Token Usage", exact=True).first
    token_usage.scroll_into_view_if_needed()
    assert "cache read" in page.inner_text("main")

    open_view(page, f"{experiment_url}/traces?groupBy=session", "Session")
    sessions = {plan.session_id for plan in plans} - {None}
    for session in sessions:
        page.get_by_text(session, exact=True).first.wait_for()
    page.screenshot(path=screenshots / "sessions.png")

    open_view(page, f"{experiment_url}/traces", "Input")
    page.get_by_role("button", name="Display").click()
    page.get_by_text("Columns", exact=True).first.click()
    menu = page.get_by_role("menu").last
    listed = set(menu.inner_text().splitlines())
    assert listed >= TAG_COLUMNS and not any(name.startswith("kind") for name in listed), sorted(listed)
    for column in ("Trace name", "User", "Cost", "team_alias"):
        menu.get_by_text(column, exact=True).first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    table = page.get_by_role("table").first if page.get_by_role("table").count() else page.locator("main")
    for group in ("claude-sonnet", "gpt-4o"):
        table.get_by_text(group, exact=True).first.wait_for()
    assert table.get_by_text("litellm-completion", exact=True).count() == 0
    page.screenshot(path=screenshots / "traces.png")

    # The usage summaries: a few earlier hours of calls, then one rollup pass that closes every hour, the open one too.
    earlier = earlier_hours(payloads, EARLIER_HOURS)
    assert consumer(sqs_event([sqs_record(payload) for payload in earlier])) == {"batchItemFailures": []}
    report = PeriodicRollup(mlflow_server.url, experiment_name).run_now(close_open_hour=True)
    assert report.traces_read == len(payloads) + len(earlier)
    hours = report.hours_written
    assert len(hours) >= EARLIER_HOURS + 1, hours
    open_view(page, f"{experiment_url}/runs", "Training runs")
    for group in PRICED_GROUPS:
        page.get_by_text(f"model group: {group}", exact=True).first.wait_for()
    open_view(page, f"{experiment_url}/evaluation-runs", "Evaluation runs")
    page.get_by_text("Evaluate traces", exact=True).first.wait_for()  # the empty list's invitation
    assert "model group:" not in page.inner_text("main")

    run_id = next(
        run.info.run_id
        for run in MlflowClient(mlflow_server.url).search_runs([experiment_url.rsplit("/", 1)[1]])
        if run.info.run_name == "model group: gpt-4o"
    )
    open_view(page, f"{experiment_url}/runs/{run_id}/model-metrics", "Model metrics")
    page.get_by_placeholder("Search metric charts").fill("hour/")
    legend = page.get_by_text("model group: gpt-4o (hour/requests)", exact=True).first
    chart = legend.locator("xpath=ancestor::*[.//*[contains(@class, 'xtick')]][1]")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not (ticks := step_ticks(chart)) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert ticks and all(hours[0] - 1 <= tick <= hours[-1] + 1 for tick in ticks), (ticks, hours)
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() and close.first.is_visible():
        close.first.click()  # the assistant panel, so the charts take the page's width
    page.screenshot(path=screenshots / "summary-run-hourly.png")
