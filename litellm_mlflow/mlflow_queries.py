"""Read-side questions the commands ask MLflow: how many traces landed, is this event there yet."""

from __future__ import annotations

from typing import Any


def client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def experiment_id(tracking_uri: str, experiment_name: str) -> str | None:
    experiment = client(tracking_uri).get_experiment_by_name(experiment_name)
    return experiment.experiment_id if experiment else None


def search_traces(
    tracking_uri: str, experiment_name: str, filter_string: str | None = None, include_spans: bool = False
) -> list[Any]:
    """Every trace of the experiment matching `filter_string`, all pages (info only unless `include_spans`)."""
    exp_id = experiment_id(tracking_uri, experiment_name)
    if exp_id is None:
        return []
    mlflow_client = client(tracking_uri)
    traces: list[Any] = []
    page_token = None
    while True:
        page = mlflow_client.search_traces(
            locations=[exp_id],
            filter_string=filter_string,
            max_results=500,
            page_token=page_token,
            include_spans=include_spans,
        )
        traces.extend(page)
        page_token = page.token
        if not page_token:
            return traces


def count_traces(tracking_uri: str, experiment_name: str) -> int:
    return len(search_traces(tracking_uri, experiment_name))
