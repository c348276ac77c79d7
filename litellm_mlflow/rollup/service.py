"""One rollup pass configured from the environment: what the rollup Lambda and the local stack's periodic task run.

| variable | default | meaning |
|---|---|---|
| `MLFLOW_TRACKING_URI` | (required) | the MLflow server or SageMaker ARN the consumer writes to |
| `MLFLOW_EXPERIMENT_NAME` | `litellm-monitoring` | the consumer's experiment |
| `LITELLM_MLFLOW_ROLLUP_GRACE_SECONDS` | `900` | how long after its end an hour is rolled up |
| `LITELLM_MLFLOW_TEAM_SUMMARIES` | `true` | `false`: model-group runs only |
| `LITELLM_MLFLOW_ROLLUP_BACKFILL_HOURS` | `168` | on the first pass, how far back to start |
"""

from __future__ import annotations

import logging
import os

from litellm_mlflow.mlflow_target import parse_tracking_uri
from litellm_mlflow.rollup.rollup import DEFAULT_BACKFILL_HOURS, Rollup, RollupReport
from litellm_mlflow.rollup.state import grace_seconds

DEFAULT_EXPERIMENT_NAME = "litellm-monitoring"
# MLflow's client retries for minutes by default; the next scheduled pass retries anyway.
_CLIENT_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    # Finishing a run would otherwise print its UI link (one more request) for every run created.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class RollupConfigError(ValueError):
    """The rollup's environment is unusable; the message names the variable."""


def apply_client_defaults() -> None:
    for name, value in _CLIENT_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def rollup_from_env(
    deadline: float | None = None,
    now_s: float | None = None,
    environ: dict[str, str] | None = None,
    give_up_at: float | None = None,
) -> RollupReport:
    """One pass over the configured experiment (nothing to do, and an empty report, if it does not exist yet);
    the deadlines are Rollup.run's."""
    env = os.environ if environ is None else environ
    uri = (env.get("MLFLOW_TRACKING_URI") or "").strip()
    if not uri:
        raise RollupConfigError("MLFLOW_TRACKING_URI is not set: give an http(s) MLflow URL or a SageMaker ARN")
    try:
        grace = grace_seconds(env)
        backfill = int(env.get("LITELLM_MLFLOW_ROLLUP_BACKFILL_HOURS") or DEFAULT_BACKFILL_HOURS)
    except ValueError as exc:
        raise RollupConfigError(f"a rollup setting is not a number: {exc}") from exc
    teams = (env.get("LITELLM_MLFLOW_TEAM_SUMMARIES") or "true").strip().lower()
    if teams not in ("true", "false"):
        raise RollupConfigError(f"LITELLM_MLFLOW_TEAM_SUMMARIES must be true or false, not {teams!r}")
    apply_client_defaults()

    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)  # the sagemaker-mlflow plugin signs with the ARN of the global URI
    if not parse_tracking_uri(uri).is_sagemaker:
        logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name((env.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT_NAME).strip())
    if experiment is None or experiment.lifecycle_stage != "active":
        return RollupReport()
    rollup = Rollup(
        client, experiment.experiment_id, grace_s=grace, backfill_hours=backfill, team_summaries=teams == "true"
    )
    return rollup.run(now_s=now_s, deadline=deadline, give_up_at=give_up_at)
