"""HourReader on fake pages (no server): a call with two traces (3.0/3.1 servers, a call delivered to two consumers
at once, before the sink's check deletes one) counts once, on the one-page path as on the sliced one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from litellm_mlflow.rollup.hour_reader import HourReader
from litellm_mlflow.rollup.slice_progress import SavedHour
from litellm_mlflow.rollup.summary_runs import Kind, SummaryKey
from litellm_mlflow.rollup.windows import Period, Window

HOUR = Window(Period.HOUR, 490_000)


class Page(list):
    def __init__(self, traces: list[Any], token: str | None = None) -> None:
        super().__init__(traces)
        self.token = token


def trace(event_id: str, tokens: int) -> SimpleNamespace:
    info = SimpleNamespace(
        tags={"mlflow.traceName": "chat", "event_id": event_id, "team_alias": "search"},
        trace_metadata={"mlflow.trace.tokenUsage": f'{{"input_tokens": {tokens}, "output_tokens": 1}}'},
        state="OK",
        execution_duration=120,
    )
    return SimpleNamespace(info=info)


class NoProgress:
    def saved(self, hour_index: int, slice_s: int) -> SavedHour:
        return SavedHour()


class FakeClient:
    """Answers every search with `pages` in turn (the hour's single page, or the first search then each slice's)."""

    def __init__(self, pages: list[Page]) -> None:
        self.pages = pages

    def search_traces(self, **kwargs: Any) -> Page:
        return self.pages.pop(0) if self.pages else Page([])


def test_a_call_with_two_traces_counts_once_when_the_hour_fits_in_one_page() -> None:
    client = FakeClient([Page([trace("e1", 10), trace("e1", 10), trace("e2", 5)])])
    read = HourReader(client, "1", NoProgress()).read(HOUR)
    chat = read.partials[SummaryKey(Kind.MODEL_GROUP, "chat")]
    assert chat.requests == 2 and chat.figures()["input_tokens"] == 15
    assert read.partials[SummaryKey(Kind.TEAM, "search")].requests == 2


def test_a_call_with_two_traces_counts_once_when_the_hour_is_read_in_slices() -> None:
    first = Page([trace("e1", 10)], token="more")  # the whole-hour search has a second page: read in slices
    client = FakeClient([first, Page([trace("e1", 10), trace("e1", 10), trace("e2", 5)])])
    read = HourReader(client, "1", NoProgress(), workers=1).read(HOUR)
    chat = read.partials[SummaryKey(Kind.MODEL_GROUP, "chat")]
    assert chat.requests == 2 and chat.figures()["input_tokens"] == 15
