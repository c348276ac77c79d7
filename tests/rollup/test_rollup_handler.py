"""The rollup Lambda's entry file as Lambda loads it, against a real MLflow server: configuration from the
environment, nothing done before the consumer made the experiment, one pass writing the summaries after."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.local.event_source import load_handler
from litellm_mlflow.rollup.service import RollupConfigError, rollup_from_env
from litellm_mlflow.sink import MlflowSink, SinkSettings

HANDLER = Path(__file__).resolve().parents[2] / "functions" / "rollup" / "handler.py"


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def test_the_handler_does_nothing_before_the_experiment_exists_then_rolls_up_closed_hours(mlflow_server, monkeypatch):
    experiment = f"rollup-handler-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    handler = load_handler(HANDLER)
    assert handler({}, Context())["hours_written"] == []
    assert logging.getLogger("litellm_mlflow.rollup.hour_reader").isEnabledFor(logging.INFO)  # progress lines logged

    hour = int(time.time() // 3600) - 3
    start = hour * 3600 + 120.0
    event = LLMCallEvent(event_id="h-1", model="chat-dep", model_group="chat", start_time=start, end_time=start + 1)
    assert not MlflowSink(SinkSettings(mlflow_server.url, experiment)).write([event]).failed
    report = handler({}, Context())
    assert report["traces_read"] == 1 and report["hours_written"][0] == hour
    assert report["unfinished_hour"] is None and report["slices_read"] >= 60  # one search read each quiet hour whole
    client = MlflowClient(mlflow_server.url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (run,) = client.search_runs([experiment_id])  # the summary run; the consumer made no per-deployment run
    assert run.info.run_name == "model group: chat" and run.data.metrics["total/requests"] == 1


def test_a_missing_tracking_uri_is_named() -> None:
    with pytest.raises(RollupConfigError, match="MLFLOW_TRACKING_URI"):
        rollup_from_env(environ={})
