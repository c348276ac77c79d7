"""Run election for the one run per model, against the pinned MLflow server (run creation is the same API on every
version; this test is timing-sensitive, so it runs once, not once per version)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient


@pytest.fixture
def client(mlflow_server) -> MlflowClient:
    return MlflowClient(mlflow_server.url)


@pytest.mark.xfail(
    reason="known race, narrowed not closed: a run create slower than another container's look-up-create-look-up "
    "leaves two runs for one model (per-call metric runs, opt-in via LITELLM_MLFLOW_CALL_METRICS since the rollup)",
    strict=False,
)
def test_concurrent_containers_agree_on_one_run_per_model(mlflow_server, client, experiment_name):
    """Several cold containers meet a new model at once: they all end up writing to the same single run."""
    import threading

    from litellm_mlflow.events import event_from_payload
    from litellm_mlflow.sink.metrics import ModelRuns
    from litellm_mlflow.sink.writer import resolve_experiment

    experiment_id = resolve_experiment(client, experiment_name)
    event = event_from_payload({"id": "c-1", "model": "race-model", "startTime": 1.0, "endTime": 2.0})
    containers = [ModelRuns(MlflowClient(mlflow_server.url), experiment_id) for _ in range(4)]
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

    assert len(chosen) == 4 and len(set(chosen)) == 1
    assert [run.info.run_id for run in client.search_runs([experiment_id])] == chosen[:1]
