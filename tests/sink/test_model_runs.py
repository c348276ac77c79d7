"""Run election for the one run per model, against the pinned MLflow server (run creation is the same API on every
version, so it runs once, not once per version)."""

from __future__ import annotations

import threading
import uuid

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from litellm_mlflow.events import event_from_payload
from litellm_mlflow.sink.metrics import MODEL_KEY_TAG, ModelRuns
from litellm_mlflow.sink.run_election import PENDING, VIEW_TAG, RunElection
from litellm_mlflow.sink.writer import resolve_experiment


@pytest.fixture
def client(mlflow_server) -> MlflowClient:
    return MlflowClient(mlflow_server.url)


@pytest.fixture
def experiment_id(client: MlflowClient, experiment_name: str) -> str:
    return resolve_experiment(client, experiment_name)


def live_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    return [run.info.run_id for run in client.search_runs([experiment_id])]


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_containers_agree_on_one_run_per_model(client, experiment_id, round_):
    """Several cold containers meet a new model at once: they all end up writing to the same single run."""
    event = event_from_payload({"id": "c-1", "model": f"race-model-{round_}", "startTime": 1.0, "endTime": 2.0})
    containers = [ModelRuns(MlflowClient(client.tracking_uri), experiment_id) for _ in range(6)]
    for runs in containers:
        runs.load()
    barrier = threading.Barrier(len(containers))
    chosen: list[str] = []

    def resolve(runs: ModelRuns) -> None:
        barrier.wait()
        chosen.append(runs.run_for(event))

    threads = [threading.Thread(target=resolve, args=(runs,)) for runs in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(chosen) == 6 and len(set(chosen)) == 1
    assert live_runs(client, experiment_id) == chosen[:1]
    assert client.get_run(chosen[0]).data.params["model"] == f"race-model-{round_}"


def test_a_slow_creator_with_an_earlier_clock_does_not_take_the_elected_run(client, experiment_id):
    """The race that elected two runs before: B's create starts first (earlier start time) but is committed after A
    has looked and kept its run. Ranking by start time, B kept its own; by view, B defers to A."""
    election = RunElection(client, experiment_id, MODEL_KEY_TAG)
    key = uuid.uuid4().hex

    def create(start_time: int | None):
        def create_run(tags: dict[str, str]) -> str:
            return client.create_run(experiment_id, start_time=start_time, tags=tags).info.run_id

        return create_run

    a_run, a_won = election.create(key, create(None))
    a_start = client.get_run(a_run).info.start_time
    b_winner, b_won = election.create(key, create(a_start - 60_000))

    assert a_won and not b_won and b_winner == a_run
    assert live_runs(client, experiment_id) == [a_run]
    everything = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert sorted(run.data.tags[VIEW_TAG] for run in everything) == ["1", "2"]


def test_a_run_from_before_the_election_scheme_stays_the_models_run(client, experiment_id):
    key = uuid.uuid4().hex
    legacy = client.create_run(experiment_id, tags={MODEL_KEY_TAG: key}).info.run_id
    election = RunElection(client, experiment_id, MODEL_KEY_TAG)

    assert election.winner(key) == legacy
    winner, won = election.create(key, lambda tags: client.create_run(experiment_id, tags=tags).info.run_id)
    assert (winner, won) == (legacy, False)
    assert live_runs(client, experiment_id) == [legacy]


def test_a_creator_that_died_before_looking_is_ignored_after_the_settle_time(client, experiment_id):
    key = uuid.uuid4().hex
    orphan = client.create_run(experiment_id, tags={MODEL_KEY_TAG: key, VIEW_TAG: PENDING}).info.run_id
    election = RunElection(client, experiment_id, MODEL_KEY_TAG, settle_s=0.3)

    assert election.winner(key) is None
    winner, won = election.create(key, lambda tags: client.create_run(experiment_id, tags=tags).info.run_id)
    assert won and winner != orphan
    assert set(live_runs(client, experiment_id)) == {orphan, winner}
