"""What passes saved of an hour they could not finish reading, so the next pass reads only the rest.

An hour is read in fixed slices (hour_reader.py). Slices read and not yet written are saved in *parts*, each part
the merge of a few slices:
- run tag `litellm_mlflow.part.<hour>.<token>` on every summary run with calls in the part: that run's partial
  figures over the part's slices (packed, packed_partial.py; a part covers at most the hour, so the tag is no
  bigger than the hour state the run already keeps, well under the 8,000 characters MLflow allows a run tag);
- experiment tag `litellm_mlflow.rollup.parts` (the progress mark), written after the part's run tags:
  `{hour: {"w": slice seconds, "p": {token: [read start ms, runs tagged, [slice indexes]]}}}`.
A part counts only if the mark names it and exactly that many runs carry its tag. So a crash between the run tags
and the mark, a second pass overwriting the mark, or a run rebuilt without the tag leave a part that is never
merged: its slices are read again. Nothing half-saved is merged. Run tags the mark does not name are deleted by the
next pass. The mark is overwritten, never deleted (3.0 servers cannot delete experiment tags), and stays small: an
hour's entry is dropped once the hour is written, and a part is refused if the mark would pass 5,000 characters
(the experiment tag limit of servers before 3.17).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from litellm_mlflow.rollup.figures import WindowPartial
from litellm_mlflow.rollup.packed_partial import decode_partial, encode_partial
from litellm_mlflow.rollup.summary_runs import SummaryKey, SummaryRuns

logger = logging.getLogger(__name__)

PROGRESS_TAG = "litellm_mlflow.rollup.parts"
PART_TAG_PREFIX = "litellm_mlflow.part."
MARK_LIMIT = 5000


def part_tag(hour_index: int, token: str) -> str:
    return f"{PART_TAG_PREFIX}{hour_index}.{token}"


@dataclass(frozen=True)
class Part:
    token: str
    started_ms: int  # when the earliest of its slices began to be read
    runs: int  # how many runs carry its tag
    slices: tuple[int, ...]


@dataclass
class SavedHour:
    """What the mark names of one hour, and the partial figures of its valid parts."""

    started_ms: int | None = None
    slices: set[int] = field(default_factory=set)
    partials: dict[SummaryKey, WindowPartial] = field(default_factory=dict)


@dataclass
class SliceProgress:
    client: Any
    experiment_id: str
    runs: SummaryRuns
    hours: dict[int, tuple[int, dict[str, Part]]] = field(default_factory=dict)  # hour -> (slice s, parts)

    @classmethod
    def load(cls, client: Any, experiment_id: str, runs: SummaryRuns) -> SliceProgress:
        progress = cls(client, experiment_id, runs)
        text = client.get_experiment(experiment_id).tags.get(PROGRESS_TAG)
        try:
            data = json.loads(text) if text else {}
            for hour, entry in data.items():
                parts = {token: Part(token, int(t), int(n), tuple(s)) for token, (t, n, s) in entry["p"].items()}
                progress.hours[int(hour)] = (int(entry["w"]), parts)
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("rollup progress mark unreadable, its hours are read again: %s", exc)
            progress.hours = {}
        return progress

    def saved(self, hour_index: int, slice_s: int) -> SavedHour:
        """The hour's valid parts merged (a part whose run tags are not all there is left out)."""
        result = SavedHour()
        width, parts = self.hours.get(hour_index, (slice_s, {}))
        if width != slice_s:
            return result
        for part in sorted(parts.values(), key=lambda p: p.slices):
            tag = part_tag(hour_index, part.token)
            holders = [run for run in self.runs.runs.values() if tag in run.tags]
            if len(holders) != part.runs or result.slices & set(part.slices):
                logger.info("hour %d: part %s not merged (%d of %d run tags)", hour_index, tag, len(holders), part.runs)
                continue
            for run in holders:
                result.partials.setdefault(run.key, WindowPartial()).merge(decode_partial(run.tags[tag]))
            result.slices.update(part.slices)
            result.started_ms = min(part.started_ms, result.started_ms or part.started_ms)
        return result

    def save(
        self, hour_index: int, slice_s: int, slices: list[int], partials: dict[SummaryKey, WindowPartial], started_ms
    ) -> bool:
        """Save slices read as one part: the run tags first, then the mark. False (nothing named) if the mark would
        grow past its limit; the slices are then read again by a later pass."""
        token = uuid.uuid4().hex[:8]
        width, parts = self.hours.get(hour_index, (slice_s, {}))
        parts = dict(parts) if width == slice_s else {}
        parts[token] = Part(token, int(started_ms), len(partials), tuple(sorted(slices)))
        candidate = {**self.hours, hour_index: (slice_s, parts)}
        if len(_encode(candidate)) > MARK_LIMIT:
            logger.warning("hour %d: %d slices not saved, the progress mark is full", hour_index, len(slices))
            return False
        tag = part_tag(hour_index, token)
        for key, partial in sorted(partials.items()):
            self.runs.write(self.runs.get_or_create(key), [], {tag: encode_partial(partial)})
        self._write(candidate)
        return True

    def finish(self, hour_index: int) -> None:
        """The hour is written: drop it from the mark, then delete its part tags (any left are garbage)."""
        if hour_index in self.hours:
            self._write({hour: entry for hour, entry in self.hours.items() if hour != hour_index})
        prefix = f"{PART_TAG_PREFIX}{hour_index}."
        for run in list(self.runs.runs.values()):
            self.runs.delete_tags(run, [key for key in run.tags if key.startswith(prefix)])

    def forget(self, keep: set[int], through_hour: int | None) -> None:
        """Drop the entries of hours already written and not being re-read, then every part tag the mark does not
        name (a crash between a part's run tags and the mark, or before `finish` deleted them)."""
        stale = [hour for hour in self.hours if through_hour is not None and hour <= through_hour and hour not in keep]
        if stale:
            self._write({hour: entry for hour, entry in self.hours.items() if hour not in stale})
        named = {part_tag(hour, token) for hour, (_, parts) in self.hours.items() for token in parts}
        for run in list(self.runs.runs.values()):
            self.runs.delete_tags(run, [k for k in run.tags if k.startswith(PART_TAG_PREFIX) and k not in named])

    def _write(self, hours: dict[int, tuple[int, dict[str, Part]]]) -> None:
        self.runs.requests_sent += 1
        self.client.set_experiment_tag(self.experiment_id, PROGRESS_TAG, _encode(hours))
        self.hours = hours


def _encode(hours: dict[int, tuple[int, dict[str, Part]]]) -> str:
    data = {
        str(hour): {"w": width, "p": {t: [p.started_ms, p.runs, list(p.slices)] for t, p in parts.items()}}
        for hour, (width, parts) in sorted(hours.items())
    }
    return json.dumps(data, separators=(",", ":"))
