"""Which traces of a batch an earlier delivery already stored: a few searches per batch, not one per trace.

Needed on every path: redelivered traces are not written again (on 3.0/3.1 servers, which make their own trace ids,
writing again would make a second trace), and the metrics and usage counters count a call once. No server before
3.6 can filter on a list of ids, so the look-up searches the batch's time window (`trace.timestamp_ms`, every 3.x
server) and matches what it finds by trace id, `event_id` tag or client request id. Calls far apart in time (an old
redelivered one among new ones) get their own window. A window holding more traces than `max_pages` pages is not
read to the end: what was not found is looked up one by one where writing it again would duplicate it (3.0/3.1),
and written again elsewhere (the write is idempotent there; only the rate counters may count it twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from litellm_mlflow.sink.trace_builder import BuiltTrace

EVENT_ID_TAG = "event_id"
# Set by span logging (3.6+); on 3.10.x only span logging sets it, so there it marks a trace whose spans are stored.
SPANS_LOCATION_TAG = "mlflow.trace.spansLocation"
SPANS_IN_TRACKING_STORE = "TRACKING_STORE"
WINDOW_GAP_MS = 5 * 60 * 1000
PAGE_SIZE = 500


@dataclass
class StoredTraceLookup:
    client: object  # mlflow TracingClient or MlflowClient: anything with search_traces
    server_makes_trace_ids: bool = False  # 3.0/3.1: the v2 API assigns ids, the event id is only in a tag
    # Where a trace's spans are written before its StartTrace (3.6-3.12), a trace whose StartTrace failed exists
    # without tags: it counts as stored only once the StartTrace's `event_id` tag is there.
    require_event_tag: bool = False
    # Where the StartTrace goes first (3.10.x), a trace whose span batch failed exists without spans: it counts as
    # stored only once span logging has set the spans-location tag.
    require_spans_tag: bool = False
    max_pages: int = 10
    requests_sent: int = 0
    found: dict = field(default_factory=dict)  # our trace id -> the stored TraceInfo, from the last look-up
    complete: bool = True  # the last look-up read every window to the end (no stored trace can have been missed)

    def stored(self, traces: Sequence[BuiltTrace]) -> set[str]:
        """Trace ids (ours, derived from the event) of the traces already on the server."""
        self.found, self.complete = {}, True
        if not traces:
            return set()
        by_trace_id = {trace.trace_id: trace for trace in traces}
        by_event_id = {trace.event_id: trace.trace_id for trace in traces}
        found: set[str] = set()
        infos, self.complete = self._search_windows(traces)
        for info in infos:
            if self.require_event_tag and EVENT_ID_TAG not in info.tags:
                continue
            if self.require_spans_tag and info.tags.get(SPANS_LOCATION_TAG) != SPANS_IN_TRACKING_STORE:
                continue
            if (ours := _our_trace_id(info, by_trace_id, by_event_id)) is not None:
                found.add(ours)
                self.found[ours] = info
        if not self.complete and self.server_makes_trace_ids:
            for trace in traces:
                if trace.trace_id not in found and (stored := self._by_event(trace, limit=1)):
                    found.add(trace.trace_id)
                    self.found[trace.trace_id] = stored[0]
        return found

    def all_stored(self, traces: Sequence[BuiltTrace]) -> dict[str, list]:
        """Every stored TraceInfo of these events, duplicates included and whatever their tags (our trace id -> infos):
        what the concurrent-delivery check (concurrent_writes.py) reads after the batch's writes. Same searches as
        `stored`; where a window was not read to the end, the events not seen are looked up one by one."""
        found: dict[str, list] = {}
        if not traces:
            return found
        by_trace_id = {trace.trace_id: trace for trace in traces}
        by_event_id = {trace.event_id: trace.trace_id for trace in traces}
        infos, complete = self._search_windows(traces)
        for info in infos:
            if (ours := _our_trace_id(info, by_trace_id, by_event_id)) is not None:
                found.setdefault(ours, []).append(info)
        if not complete:
            for trace in traces:
                if trace.trace_id not in found:
                    found[trace.trace_id] = self._by_event(trace, limit=PAGE_SIZE)
        return found

    def _search_windows(self, traces: Sequence[BuiltTrace]) -> tuple[list, bool]:
        """Every TraceInfo stored in the batch's time windows (at most `max_pages` pages each), and whether every
        window was read to the end."""
        experiment_id = traces[0].experiment_id
        infos: list = []
        complete = True
        for low, high in _windows(sorted(_request_time_ms(trace) for trace in traces)):
            token = None
            for _ in range(self.max_pages):
                self.requests_sent += 1
                page = self.client.search_traces(
                    locations=[experiment_id],
                    filter_string=f"trace.timestamp_ms >= {low} AND trace.timestamp_ms <= {high}",
                    max_results=PAGE_SIZE,
                    page_token=token,
                    include_spans=False,
                )
                infos.extend(trace.info for trace in page)
                token = page.token
                if not token:
                    break
            else:
                complete = False
        return infos, complete

    def _by_event(self, trace: BuiltTrace, limit: int) -> list:
        """Up to `limit` stored TraceInfos with this event's `event_id` tag (none for an id no filter can quote)."""
        if "'" in trace.event_id or "\\" in trace.event_id:
            return []
        self.requests_sent += 1
        page = self.client.search_traces(
            locations=[trace.experiment_id],
            filter_string=f"tag.{EVENT_ID_TAG} = '{trace.event_id}'",
            max_results=limit,
            include_spans=False,
        )
        return [stored.info for stored in page]


def _our_trace_id(info, by_trace_id, by_event_id) -> str | None:
    if info.trace_id in by_trace_id:
        return info.trace_id
    return by_event_id.get(info.tags.get(EVENT_ID_TAG) or getattr(info, "client_request_id", None))


def _request_time_ms(trace: BuiltTrace) -> int:
    return trace.span.start_time_ns // 1_000_000


def _windows(times_ms: list[int]) -> list[tuple[int, int]]:
    """Sorted start times cut where two neighbours are more than WINDOW_GAP_MS apart."""
    windows: list[tuple[int, int]] = []
    low = high = times_ms[0]
    for value in times_ms[1:]:
        if value - high > WINDOW_GAP_MS:
            windows.append((low, high))
            low = value
        high = value
    windows.append((low, high))
    return windows
