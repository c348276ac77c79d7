"""The concurrent-delivery check's rules, request by request (the real servers: test_concurrent_delivery.py)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from packaging.version import Version

from litellm_mlflow.events import event_from_payload
from litellm_mlflow.sink.concurrent_writes import UNCHECKED_REASON, ConcurrentWriteCheck, totals_wrong
from litellm_mlflow.sink.server_caps import capabilities_for
from litellm_mlflow.sink.stored_traces import StoredTraceLookup
from litellm_mlflow.sink.trace_builder import build_trace


def trace(event_id: str, start: float = 1000.0):
    payload = {
        "id": event_id, "model": "m", "startTime": start, "endTime": start + 1,
        "response_cost": 0.5, "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
    }  # fmt: skip
    return build_trace(event_from_payload(payload), "7")


class Page(list):
    token = None


class Client:
    def __init__(self, infos=(), down: bool = False):
        self.infos, self.down, self.searches = list(infos), down, 0

    def search_traces(self, **kwargs):
        self.searches += 1
        if self.down:
            raise ConnectionError("refused")
        return Page(SimpleNamespace(info=info) for info in self.infos)


def info(trace_id: str, event_id: str, tokens: int = 3, cost: float = 0.5):
    usage = {"input_tokens": tokens, "output_tokens": 4, "total_tokens": tokens + 4}
    metadata = {"mlflow.trace.tokenUsage": json.dumps(usage), "mlflow.trace.cost": json.dumps({"total_cost": cost})}
    return SimpleNamespace(trace_id=trace_id, tags={"event_id": event_id}, trace_metadata=metadata)


class Writer:
    """Records what the check asks of a writer (the StartTrace that rewrites totals, or finishing a kept trace)."""

    def __init__(self):
        self.written, self.finished, self.requests_sent = [], [], 0

    def write(self, traces, deadline=None):
        self.written += [trace.trace_id for trace in traces]
        self.requests_sent += len(traces)
        return {}

    def repair(self, found, deadline=None):
        self.finished += [(trace.trace_id, stored.trace_id) for trace, stored in found]
        return {}


class Transport:
    def __init__(self):
        self.bodies = []

    def request(self, method, endpoint, *, data=None, headers=None, deadline=None, retries=None):
        assert (method, endpoint) == ("POST", "/api/2.0/mlflow/traces/delete-traces")
        self.bodies.append(json.loads(data))
        return SimpleNamespace(status_code=200, content=b"{}", json=lambda: {})


def test_totals_are_rewritten_only_where_a_stored_trace_shows_other_figures_than_the_call():
    right, doubled, cost_doubled = trace("a"), trace("b", 1001.0), trace("c", 1002.0)
    stored = [
        info(right.trace_id, "a"),
        info(doubled.trace_id, "b", tokens=6),
        info(cost_doubled.trace_id, "c", cost=1.0),
    ]
    writer = Writer()
    check = ConcurrentWriteCheck(StoredTraceLookup(Client(stored)), totals_writer=writer)
    assert check.check([right, doubled, cost_doubled]) == {}
    assert writer.written == [doubled.trace_id, cost_doubled.trace_id] and check.repaired == 2
    assert check.requests_sent == 2  # the repairs' StartTraces
    assert check.lookup.requests_sent == 1  # one search for the batch


def test_absent_totals_are_wrong_but_keys_only_the_server_keeps_are_not_compared():
    call = trace("a")
    assert totals_wrong(SimpleNamespace(trace_metadata={}), call)
    stored = info(call.trace_id, "a")
    usage = json.loads(stored.trace_metadata["mlflow.trace.tokenUsage"])
    stored.trace_metadata["mlflow.trace.tokenUsage"] = json.dumps({**usage, "cache_read_input_tokens": 0})
    assert not totals_wrong(stored, call)


def test_duplicates_keep_the_smallest_id_finished_and_are_deleted_in_one_request():
    ours_kept, theirs_kept, single = trace("a"), trace("b", 1001.0), trace("c", 1002.0)
    stored = [
        info("tr-1", "a"), info("tr-9", "a"),  # ours is the smallest: nothing to finish
        info("tr-2", "b"), info("tr-8", "b"),  # another consumer's is the smallest: finish it, drop ours
        info("tr-5", "c"),
    ]  # fmt: skip
    writer, transport = Writer(), Transport()
    check = ConcurrentWriteCheck(StoredTraceLookup(Client(stored)), v2_writer=writer, transport=transport)
    finished = {ours_kept.trace_id: "tr-1", theirs_kept.trace_id: "tr-8", single.trace_id: "tr-5"}
    assert check.check([ours_kept, theirs_kept, single], finished) == {}
    assert writer.finished == [(theirs_kept.trace_id, "tr-2")]
    assert transport.bodies == [{"experiment_id": "7", "request_ids": ["tr-9", "tr-8"]}]
    assert check.requests_sent == 1 and check.repaired == 2


def test_a_check_that_cannot_run_fails_the_calls_so_sqs_redelivers_them():
    batch = [trace("a"), trace("b", 1001.0)]
    check = ConcurrentWriteCheck(StoredTraceLookup(Client(down=True)), totals_writer=Writer())
    failures = check.check(batch)
    assert set(failures) == {t.trace_id for t in batch} and "unavailable" in failures[batch[0].trace_id]
    client = Client()
    late = ConcurrentWriteCheck(StoredTraceLookup(client), totals_writer=Writer())
    assert late.check(batch, deadline=time.monotonic() - 1) == dict.fromkeys(
        (t.trace_id for t in batch), UNCHECKED_REASON
    )
    assert client.searches == 0


def test_paths_that_need_no_check_send_nothing():
    client = Client()
    assert ConcurrentWriteCheck(StoredTraceLookup(client)).check([trace("a")]) == {}
    assert client.searches == 0


@pytest.mark.parametrize(
    ("version", "adds"),
    [("3.0.1", False), ("3.4.0", False), ("3.6.0", False), ("3.9.2", False), ("3.10.1", True), ("3.11.0", False),
     ("3.12.0", False), ("3.13.0", True), ("3.14.2", True), ("3.15.0", False), ("3.17.2", False), (None, False)],
)  # fmt: skip
def test_where_span_posts_add_to_a_trace_totals(version, adds):
    assert capabilities_for(Version(version) if version else None).span_posts_add_totals is adds
