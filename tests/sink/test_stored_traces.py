"""The stored-trace look-up: one windowed search per batch, matched by trace id, event_id tag or client request id."""

from __future__ import annotations

from types import SimpleNamespace

from litellm_mlflow.events import event_from_payload
from litellm_mlflow.sink.stored_traces import WINDOW_GAP_MS, StoredTraceLookup, _windows
from litellm_mlflow.sink.trace_builder import build_trace


def trace(event_id: str, start: float):
    return build_trace(
        event_from_payload({"id": event_id, "model": "m", "startTime": start, "endTime": start + 1}), "7"
    )


class Page(list):
    def __init__(self, items, token=None):
        super().__init__(items)
        self.token = token


class FakeClient:
    """Answers window searches with the given stored infos, two per page."""

    def __init__(self, infos):
        self.infos, self.filters = infos, []

    def search_traces(self, locations, filter_string, max_results, page_token=None, include_spans=False):
        self.filters.append(filter_string)
        start = int(page_token or 0)
        items = [SimpleNamespace(info=info) for info in self.infos[start : start + 2]]
        return Page(items, str(start + 2) if start + 2 < len(self.infos) else None)


def test_windows_split_on_long_gaps_only():
    assert _windows([0, 10, 20]) == [(0, 20)]
    assert _windows([0, 10, 10 + WINDOW_GAP_MS + 1]) == [(0, 10), (10 + WINDOW_GAP_MS + 1,) * 2]


def test_found_by_trace_id_event_tag_or_client_request_id_with_paging():
    batch = [trace(f"e{i}", 1000.0 + i) for i in range(5)]
    stored = [
        SimpleNamespace(trace_id=batch[0].trace_id, tags={}, client_request_id=None),
        SimpleNamespace(trace_id="server-made-1", tags={"event_id": "e1"}, client_request_id=None),
        SimpleNamespace(trace_id="other", tags={}, client_request_id=None),
        SimpleNamespace(trace_id="server-made-2", tags={}, client_request_id="e3"),
    ]
    client = FakeClient(stored)
    lookup = StoredTraceLookup(client)
    assert lookup.stored(batch) == {batch[0].trace_id, batch[1].trace_id, batch[3].trace_id}
    assert lookup.requests_sent == 2  # one window, two pages
    assert client.filters[0] == "trace.timestamp_ms >= 1000000 AND trace.timestamp_ms <= 1004000"


def test_an_unread_window_is_checked_one_by_one_where_rewriting_would_duplicate():
    batch = [trace(f"e{i}", 1000.0 + i) for i in range(3)]
    stored = [SimpleNamespace(trace_id=f"x{i}", tags={}, client_request_id=None) for i in range(6)]
    lookup = StoredTraceLookup(FakeClient(stored), server_makes_trace_ids=True, max_pages=1)
    assert lookup.stored(batch) == {trace.trace_id for trace in batch}  # the fake finds every one-by-one search
    assert lookup.requests_sent == 1 + 3


def test_where_spans_go_first_a_trace_without_its_starttrace_tag_is_not_stored():
    batch = [trace(f"e{i}", 1000.0 + i) for i in range(2)]
    stored = [
        SimpleNamespace(trace_id=batch[0].trace_id, tags={"event_id": "e0"}, client_request_id="e0"),
        SimpleNamespace(trace_id=batch[1].trace_id, tags={}, client_request_id=None),  # spans only
    ]
    assert StoredTraceLookup(FakeClient(stored), require_event_tag=True).stored(batch) == {batch[0].trace_id}
    assert StoredTraceLookup(FakeClient(stored)).stored(batch) == {batch[0].trace_id, batch[1].trace_id}


def test_where_starttrace_goes_first_a_trace_without_its_spans_tag_is_not_stored():
    batch = [trace(f"e{i}", 1000.0 + i) for i in range(2)]
    spans = {"mlflow.trace.spansLocation": "TRACKING_STORE"}
    stored = [
        SimpleNamespace(trace_id=batch[0].trace_id, tags={"event_id": "e0", **spans}, client_request_id="e0"),
        SimpleNamespace(trace_id=batch[1].trace_id, tags={"event_id": "e1"}, client_request_id="e1"),  # no spans
    ]
    lookup = StoredTraceLookup(FakeClient(stored), require_event_tag=True, require_spans_tag=True)
    assert lookup.stored(batch) == {batch[0].trace_id}
    assert lookup.complete


def test_a_window_not_read_to_the_end_is_reported():
    batch = [trace(f"e{i}", 1000.0 + i) for i in range(2)]
    stored = [SimpleNamespace(trace_id=f"x{i}", tags={}, client_request_id=None) for i in range(6)]
    lookup = StoredTraceLookup(FakeClient(stored), max_pages=1)
    lookup.stored(batch)
    assert not lookup.complete
    lookup.stored([])
    assert lookup.complete
