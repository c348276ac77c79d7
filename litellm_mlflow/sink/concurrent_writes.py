"""After a batch's writes, one search of its traces, and a repair of those a concurrent delivery left wrong.

SQS standard queues deliver at least once: two consumers can hold the same call at the same time, both look it up
before either has written it (stored_traces.py finds nothing), and both write it. What that leaves depends on the
write path (server_caps.py), read in the servers' code and shown by tests/sink/test_concurrent_delivery.py:
- 3.10.x (StartTrace, then the spans) and the OTLP path of 3.13/3.14 (the spans only): each span post adds the
  spans' token usage and cost to the trace's metadata (`log_spans` sums onto what is stored; 3.15+ recompute from the
  stored spans), so the trace shows twice the tokens and cost. The same happens when a span post whose answer was
  lost is retried. Repair: one StartTrace with the call's own totals (the merge into an existing trace that the
  spans-first path relies on), which writes absolute values (and from 3.13 marks them final, so a later span post
  leaves them alone).
- 3.0/3.1 (v2 calls): the server makes a new trace id per StartTrace, so the call has two traces with the same
  `event_id` tag. Repair: keep the trace with the smallest id (the rule every consumer applies to what it sees),
  finish it if another consumer started it (the end call and span artifact, both idempotent), delete the rest.
- the other paths need nothing: client-made trace ids there, and the last write of each consumer sets absolute
  totals (3.4/3.5: StartTrace carries them; 3.6-3.9, 3.11, 3.12: StartTrace after the spans rewrites them; 3.15+:
  `log_spans` recomputes them from the stored spans, so a re-post does not add).
Each consumer checks after its own last write and repairs write absolute values, so the last writer's check sees the
final state and concurrent repairs agree. A check that cannot run (deadline, server unavailable) fails the calls
it covers: SQS redelivers them, and the redelivery's check (which also covers calls found already stored) repairs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey

from litellm_mlflow.sink import v2_trace_calls
from litellm_mlflow.sink.sdk_writer import SdkTraceWriter
from litellm_mlflow.sink.stored_traces import StoredTraceLookup
from litellm_mlflow.sink.trace_builder import BuiltTrace
from litellm_mlflow.sink.transport import Transport, short_text

logger = logging.getLogger(__name__)

UNCHECKED_REASON = "stored, but the invocation's time ran out before the check for a concurrent delivery"
DELETE_IDS_PER_REQUEST = 100


@dataclass
class ConcurrentWriteCheck:
    lookup: StoredTraceLookup
    # 3.10.x and OTLP before 3.15: a StartTrace for stored spans (spans_logged=True) that rewrites a trace's totals.
    totals_writer: SdkTraceWriter | None = None
    # 3.0/3.1: the v2 writer (finishes a kept trace another consumer started) and the transport (deletes duplicates).
    v2_writer: SdkTraceWriter | None = None
    transport: Transport | None = None
    requests_sent: int = 0  # repairs and deletes (the searches count on the look-up; 3.0/3.1 finishing on its writer)
    repaired: int = 0  # traces whose totals were rewritten or whose duplicates were deleted (for logs and tests)

    @property
    def active(self) -> bool:
        return self.totals_writer is not None or self.v2_writer is not None

    def check(
        self, traces: Sequence[BuiltTrace], finished: Mapping[str, str] | None = None, deadline: float | None = None
    ) -> dict[str, str]:
        """{trace_id: reason} for calls not known right. `finished`: our trace id -> the stored id this batch wrote
        or finished (3.0/3.1), so only a kept trace another consumer started is finished again."""
        if not self.active or not traces:
            return {}
        if _past(deadline):
            return {trace.trace_id: UNCHECKED_REASON for trace in traces}
        try:
            stored = self.lookup.all_stored(traces)
        except Exception as exc:
            reason = f"stored, but MLflow was unavailable for the concurrent-delivery check: {short_text(exc)}"
            return {trace.trace_id: reason for trace in traces}
        if self.totals_writer is not None:
            return self._fix_totals(traces, stored, deadline)
        return self._drop_duplicates(traces, stored, finished or {}, deadline)

    def _fix_totals(self, traces: Sequence[BuiltTrace], stored: dict[str, list], deadline) -> dict[str, str]:
        assert self.totals_writer is not None
        wrong = [trace for trace in traces if any(totals_wrong(info, trace) for info in stored.get(trace.trace_id, ()))]
        if not wrong:
            return {}
        before = self.totals_writer.requests_sent
        failures = self.totals_writer.write(wrong, deadline)
        self.requests_sent += self.totals_writer.requests_sent - before
        self.repaired += len(wrong) - len(failures)
        logger.info("concurrent delivery: %d of %d traces had other totals than their call; %d rewritten",
                    len(wrong), len(traces), len(wrong) - len(failures))  # fmt: skip
        return {trace_id: f"stored with wrong totals, not repaired: {reason}" for trace_id, reason in failures.items()}

    def _drop_duplicates(
        self, traces: Sequence[BuiltTrace], stored: dict[str, list], finished: Mapping[str, str], deadline
    ) -> dict[str, str]:
        assert self.v2_writer is not None and self.transport is not None
        to_finish: list[tuple[BuiltTrace, object]] = []
        extra: dict[str, list[str]] = {}
        for trace in traces:
            infos = sorted(stored.get(trace.trace_id, ()), key=lambda info: info.trace_id)
            if len(infos) < 2:
                continue
            kept = infos[0]
            if finished.get(trace.trace_id) != kept.trace_id:
                to_finish.append((trace, kept))
            extra[trace.trace_id] = [info.trace_id for info in infos[1:]]
        if not extra:
            return {}
        failures = self.v2_writer.repair(to_finish, deadline) if to_finish else {}
        pending = [(trace_id, ids) for trace_id, ids in extra.items() if trace_id not in failures]
        for start in range(0, len(pending), DELETE_IDS_PER_REQUEST):
            chunk = pending[start : start + DELETE_IDS_PER_REQUEST]
            if _past(deadline):
                failures.update({trace_id: UNCHECKED_REASON for trace_id, _ in chunk})
                continue
            ids = [stored_id for _, stored_ids in chunk for stored_id in stored_ids]
            try:
                self.requests_sent += 1
                v2_trace_calls.delete_traces(self.transport, traces[0].experiment_id, ids, deadline)
            except Exception as exc:
                reason = f"stored twice by concurrent deliveries, duplicate not deleted: {short_text(exc)}"
                failures.update({trace_id: reason for trace_id, _ in chunk})
            else:
                self.repaired += len(chunk)
                logger.info("concurrent delivery: the duplicates of %d calls deleted (%d traces)", len(chunk), len(ids))
        return failures


def totals_wrong(info, trace: BuiltTrace) -> bool:
    """Whether a stored trace's token usage or cost differs from the call's own (keys both sides have) or is absent."""
    metadata = info.trace_metadata or {}
    for attribute, key in ((SpanAttributeKey.CHAT_USAGE, TraceMetadataKey.TOKEN_USAGE),
                           (SpanAttributeKey.LLM_COST, TraceMetadataKey.COST)):  # fmt: skip
        expected = trace.span.attributes.get(attribute)
        if not isinstance(expected, dict) or not expected:
            continue
        try:
            found = json.loads(metadata.get(key) or "null")
        except ValueError:
            return True
        if not isinstance(found, dict):
            return True
        for name, value in expected.items():
            if name in found and not _same(found[name], value):
                return True
    return False


def _same(found: object, expected: object) -> bool:
    try:
        return math.isclose(float(found), float(expected), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return found == expected


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
