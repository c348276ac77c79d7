"""Per-deployment runs of the per-call writer, marked FINISHED (and listed with the training runs) by each pass.

Before the rollup, the consumer logged every call's points to one run per deployment (tag `litellm_mlflow.model_key`)
and never ended it, so those runs showed "Running" forever and sat under MLflow 3's "Evaluation runs". They are kept
(their charts are the history before the summaries), only finished: a finished run still takes metrics, so a
consumer that opts back in to per-call points (LITELLM_MLFLOW_CALL_METRICS) keeps writing to the same run, and the
next pass finishes any run it creates. Idempotent: only runs still RUNNING are touched, and a run whose status
another pass already set is left as it is.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

# The per-call writer's run tag (litellm_mlflow.sink.metrics.MODEL_KEY_TAG; the rollup does not import the consumer).
PER_CALL_RUN_TAG = "litellm_mlflow.model_key"
LEFTOVER_FILTER = f"attributes.status = 'RUNNING' AND tags.`{PER_CALL_RUN_TAG}` LIKE '%'"


def finish_leftover_runs(client: Any, experiment_id: str, link_output: Any = None) -> list[str]:
    """Mark the experiment's per-deployment runs that are still RUNNING as FINISHED; returns their run ids.

    `link_output(run_id)`, when given, also gives each run a model output, which moves it from MLflow's
    "Evaluation runs" to the training runs (the runs table with charts).
    """
    finished: list[str] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=LEFTOVER_FILTER, max_results=1000, page_token=token)
        for run in page:
            run_id = run.info.run_id
            if link_output is not None:
                link_output(run_id)
            client.set_terminated(run_id, "FINISHED")
            finished.append(run_id)
        token = page.token
        if not token:
            break
    if finished:
        logger.info("finished %d per-deployment run(s) left running by the per-call writer", len(finished))
    return finished
