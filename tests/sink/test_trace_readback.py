"""Demo-like LiteLLM traffic -> the real consumer -> a real MLflow server, read back through MLflow's own API: what
the GenAI views (trace list, Overview, Sessions) and search use must hold the right values, and "unknown" must never
be stored as 0."""

from __future__ import annotations

from collections import Counter

import pytest
from mlflow import MlflowClient

from litellm_mlflow.local.wiring import UNPRICED_MODEL_GROUP
from litellm_mlflow.sink.trace_builder import (
    END_USER_TAG,
    KEY_ALIAS_TAG,
    ORG_ALIAS_TAG,
    ORG_ID_TAG,
    TEAM_ALIAS_TAG,
    TEAM_ID_TAG,
    TTFT_TAG,
)  # fmt: skip
from tests.support.demo_calls import CACHED_MODEL_GROUP, demo_payloads
from tests.support.litellm_events import sqs_event, sqs_record

pytestmark = pytest.mark.timeout(300)

# TTFT_TAG: streamed calls only, for the usage rollup (it reads trace infos, never spans).
OUR_TAGS = {
    "mlflow.traceName",
    TEAM_ID_TAG,
    TEAM_ALIAS_TAG,
    KEY_ALIAS_TAG,
    END_USER_TAG,
    ORG_ID_TAG,
    ORG_ALIAS_TAG,
    TTFT_TAG,
}
# Tags the server or the write path sets itself (the SDK path's redelivery look-up key among them).
SYSTEM_TAGS = {"event_id"}


@pytest.fixture
def mlflow_server(versioned_mlflow_server):
    """Runs against each MLflow server version SageMaker runs (tests/conftest.py)."""
    return versioned_mlflow_server


@pytest.fixture
def stored(consumer, mlflow_server, experiment_name, litellm_capture):
    plans, payloads = demo_payloads(litellm_capture)
    assert consumer(sqs_event([sqs_record(payload) for payload in payloads])) == {"batchItemFailures": []}
    client = MlflowClient(mlflow_server.url)
    experiment_id = client.get_experiment_by_name(experiment_name).experiment_id
    traces = client.search_traces(locations=[experiment_id], max_results=500, include_spans=True)
    assert len(traces) == len(payloads)
    by_call = {trace.data.spans[0].attributes["litellm.call_id"]: trace for trace in traces}
    return client, experiment_id, plans, {p["litellm_call_id"]: (p, by_call[p["litellm_call_id"]]) for p in payloads}


def test_demo_traffic_reads_back_right(stored):
    """One batch of demo traffic (made once: it is the slow part), then every view's fields and searches."""
    names_costs_tokens_and_identity(stored)
    sessions_and_searches(stored)


def names_costs_tokens_and_identity(stored):
    _, _, _plans, calls = stored
    for payload, trace in calls.values():
        span, info = trace.data.spans[0], trace.info
        group = payload["model_group"]
        assert info.tags["mlflow.traceName"] == group and span.name == group
        assert span.attributes["mlflow.llm.model"] == group
        assert span.attributes["litellm.deployment"] == payload["model"]
        assert set(info.tags) - SYSTEM_TAGS - {t for t in info.tags if t.startswith("mlflow.")} <= OUR_TAGS
        assert (info.tags[TEAM_ID_TAG], info.tags[KEY_ALIAS_TAG], info.tags[ORG_ID_TAG]) == (
            payload["metadata"]["user_api_key_team_id"], payload["metadata"]["user_api_key_alias"], "org-acme",
        )  # fmt: skip
        assert info.trace_metadata["mlflow.trace.user"] == payload["metadata"]["user_api_key_user_id"]
        latency = span.attributes["litellm.latency_ms"]
        assert latency == round(latency, 1)
        if payload["status"] != "success":
            assert info.state.value == "ERROR"
            assert "mlflow.chat.tokenUsage" not in span.attributes and "mlflow.llm.cost" not in span.attributes
            assert not info.token_usage and "mlflow.trace.cost" not in info.trace_metadata
        elif group == UNPRICED_MODEL_GROUP:
            assert payload["response_cost"] == 0.0  # what LiteLLM says: we must not store it as a price
            assert "mlflow.llm.cost" not in span.attributes and span.attributes["litellm.cost_unknown"] is True
            assert "mlflow.trace.cost" not in info.trace_metadata
            assert info.token_usage["input_tokens"] == payload["prompt_tokens"]
        else:
            assert span.attributes["mlflow.llm.cost"]["total_cost"] == pytest.approx(payload["response_cost"])
            assert payload["response_cost"] > 0, group

    (cached_payload, cached) = next(c for c in calls.values() if "kind:cached" in c[0]["request_tags"])
    usage = cached.data.spans[0].attributes["mlflow.chat.tokenUsage"]
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (1500, 200)
    assert cached.data.spans[0].attributes["litellm.reasoning_tokens"] == 120
    assert cached.data.spans[0].attributes["litellm.cache_read_cost"] > 0
    assert cached_payload["model_group"] == CACHED_MODEL_GROUP


def sessions_and_searches(stored):
    """Sessions are the client's; search finds by model group, team, user, session and status."""
    client, experiment_id, plans, calls = stored
    sessions = {trace.info.trace_metadata.get("mlflow.trace.session") for _, trace in calls.values()}
    assert sessions - {None} == {plan.session_id for plan in plans} - {None}
    assert None in sessions  # calls that sent no session have none: nothing made up per call

    def count(filter_string: str) -> int:
        return len(client.search_traces(locations=[experiment_id], filter_string=filter_string, max_results=500))

    payloads = [payload for payload, _ in calls.values()]
    groups = Counter(p["model_group"] for p in payloads)
    teams = Counter(p["metadata"]["user_api_key_team_alias"] for p in payloads)
    users = Counter(p["metadata"]["user_api_key_user_id"] for p in payloads)
    assert count("trace.name = 'claude-sonnet'") == groups["claude-sonnet"]
    assert count("tag.team_alias = 'Billing'") == teams["Billing"]
    assert count("metadata.`mlflow.trace.user` = 'bob'") == users["bob"]
    assert count("metadata.`mlflow.trace.session` = 'alice-task-1'") == sum(
        1 for p in payloads if p["client_session_id"] == "alice-task-1"
    )
    assert count("trace.status = 'ERROR'") == sum(1 for p in payloads if p["status"] != "success")
