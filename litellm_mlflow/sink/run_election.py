"""One run per key among concurrent creators, with nothing but MLflow's run API (no lock service).

MLflow has no uniqueness a client can use for runs, and a run's start time is the creator's clock, so "the oldest run
wins" elects two runs when one creator's request is slow: a creator that looked before the slow run was committed
keeps its own, while the slow one, seeing both, may rank itself first. Instead every creator records its *view*: how
many runs for the key (deleted ones included) it saw right after its own was created. The run with the smallest view
wins; ties go to the start time, then the run id.

Why every creator elects the same run (the tracking store is one database, so a search sees every committed create):
let m be the smallest view and y a run with it. A run committed before y's look whose own look came before y was
committed saw fewer runs than were committed at y's look, i.e. fewer than m: impossible. So every creator looked after
y was committed and sees y; and every run with view m was seen by all, since the committed set is the same at every
look that counts m. A creator waits only for the view tags of the runs it saw (a run's tag is "pending" from its
create until its creator has looked), then ranks. A creator that sees only its own run wins at once (at most one can).
Losers delete their own run; deleted runs still count in views, so a late creator cannot see fewer runs than were made.
Runs made before this scheme (no view tag) count as view 0: an earlier election already chose them. A creator that
died before tagging its run is ignored after `settle_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

VIEW_TAG = "litellm_mlflow.election_view"
PENDING = "pending"
_DELETED = "deleted"


@dataclass(frozen=True)
class Candidate:
    run_id: str
    start_time: int
    view: int | None  # None: its creator has not looked yet
    deleted: bool

    @classmethod
    def of(cls, run: Run) -> Candidate:
        tag = run.data.tags.get(VIEW_TAG)
        view = 0 if tag is None else (int(tag) if tag.isdigit() else None)
        return cls(run.info.run_id, run.info.start_time or 0, view, run.info.lifecycle_stage == _DELETED)

    @property
    def rank(self) -> tuple[int, int, str]:
        return (self.view if self.view is not None else 2**62, self.start_time, self.run_id)


@dataclass
class RunElection:
    """Elects the one run per value of `key_tag` in an experiment."""

    client: MlflowClient
    experiment_id: str
    key_tag: str
    settle_s: float = 15.0
    poll_s: float = 0.05

    def candidates(self, key: str) -> list[Candidate]:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{self.key_tag}` = '{key}'",
            run_view_type=ViewType.ALL,
            max_results=1000,
        )
        return [Candidate.of(run) for run in runs]

    def winner(self, key: str, seen: list[Candidate] | None = None) -> str | None:
        """The elected run for `key`, once every run seen so far has its view (None: no live run)."""
        seen = self.candidates(key) if seen is None else seen
        waiting = {c.run_id for c in seen if c.view is None and not c.deleted}
        give_up = time.monotonic() + self.settle_s
        while waiting and time.monotonic() < give_up:
            time.sleep(self.poll_s)
            seen = self.candidates(key)
            waiting &= {c.run_id for c in seen if c.view is None and not c.deleted}
        live = [c for c in seen if not c.deleted and c.view is not None]
        return min(live, key=lambda c: c.rank).run_id if live else None

    def create(self, key: str, create_run: Callable[[dict[str, str]], str]) -> tuple[str, bool]:
        """Create a run for `key` and elect; (winner's run id, whether it is ours). A losing run is deleted."""
        mine = create_run({self.key_tag: key, VIEW_TAG: PENDING})
        seen = self.candidates(key)  # ours included: the store shows a create once it has answered it
        view = len(seen)
        self.client.set_tag(mine, VIEW_TAG, str(view))
        seen = [replace(c, view=view) if c.run_id == mine else c for c in seen]
        winner = self.winner(key, seen) or mine
        if winner != mine:
            self.client.delete_run(mine)
        return winner, winner == mine
