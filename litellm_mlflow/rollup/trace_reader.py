"""Reads one window's stored traces (info only: tags, metadata, state, duration; never spans or content).

Works on every supported server (3.0.1 through 3.17): `search_traces` with a `trace.timestamp_ms` range, paged.
A trace's window is its start time (MLflow's `timestamp_ms`). What each figure comes from:
- model group: the trace name (`mlflow.traceName`: LiteLLM's model group, else the model); team: tag
  `team_alias`, else `team_id`;
- status and latency: the trace's state and execution duration;
- tokens and cost: trace metadata `mlflow.trace.tokenUsage` / `mlflow.trace.cost` (the server derives them from
  the span on the OTLP path; the SDK path sends them itself), absent cost = unpriced;
- time to first token: trace tag `ttft_ms` (streamed calls only).
Traces without a name are skipped, and a call is counted once per read (by its `event_id` tag): on 3.0/3.1 servers a
call delivered to two consumers at once has two traces until the sink's concurrent-delivery check deletes one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from litellm_mlflow.rollup.figures import CallRecord

PAGE_SIZE = 500  # the largest page MLflow's search_traces accepts
TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
COST_KEY = "mlflow.trace.cost"
TTFT_TAG = "ttft_ms"
TRACE_NAME_TAG = "mlflow.traceName"
EVENT_ID_TAG = "event_id"


def window_filter(start_ms: int, end_ms: int) -> str:
    return f"trace.timestamp_ms >= {int(start_ms)} AND trace.timestamp_ms < {int(end_ms)}"


class ReadAbandoned(Exception):
    """The read was given up between two pages (its caller's hard deadline passed): what it yielded is incomplete."""


def read_window(
    client: Any,
    experiment_id: str,
    start_ms: int,
    end_ms: int,
    page_size: int = PAGE_SIZE,
    give_up: Callable[[], bool] | None = None,
) -> Iterator[CallRecord]:
    """Every litellm-mlflow call whose trace starts in [start_ms, end_ms), page by page; raises ReadAbandoned
    before a page (the first one included) once `give_up()` is true."""
    token = None
    seen: set[str] = set()
    while True:
        if give_up is not None and give_up():
            raise ReadAbandoned(f"window [{start_ms}, {end_ms}) given up before a page")
        page = client.search_traces(
            locations=[experiment_id],
            filter_string=window_filter(start_ms, end_ms),
            max_results=page_size,
            page_token=token,
            include_spans=False,
        )
        for info in distinct_calls((trace.info for trace in page), seen):
            record = call_record(info)
            if record is not None:
                yield record
        token = page.token
        if not token:
            return


def distinct_calls(infos: Iterable[Any], seen: set[str]) -> Iterator[Any]:
    """The infos whose `event_id` tag is not in `seen` (which it fills): one trace per call."""
    for info in infos:
        event_id = (info.tags or {}).get(EVENT_ID_TAG)
        if event_id is not None:
            if event_id in seen:
                continue
            seen.add(event_id)
        yield info


def call_record(info: Any) -> CallRecord | None:
    tags = info.tags or {}
    group = tags.get(TRACE_NAME_TAG) or tags.get("model_group")
    if not group:
        return None
    metadata = info.trace_metadata or {}
    usage = _json_object(metadata.get(TOKEN_USAGE_KEY))
    cost = _json_object(metadata.get(COST_KEY))
    state = getattr(info.state, "value", info.state)
    return CallRecord(
        model_group=group,
        team=tags.get("team_alias") or tags.get("team_id") or None,
        ok=str(state) == "OK",
        latency_ms=float(info.execution_duration or 0),
        ttft_ms=_number(tags.get(TTFT_TAG)),
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cost_usd=_number(cost.get("total_cost")),
    )


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
