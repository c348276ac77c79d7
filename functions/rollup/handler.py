"""Rollup Lambda: on an EventBridge schedule, one pass of the usage rollup (closed hours of stored traces -> one
MLflow run per model group and per team). Thin: the deadline from Lambda's clock, the pass in the library, a log
line with what it did. A pass that runs out of time stops between hours; the next scheduled pass goes on.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from aws_lambda_powertools import Logger

from litellm_mlflow.rollup.service import rollup_from_env

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "litellm-mlflow-rollup")

logger = Logger()

# Stop starting hours this long before Lambda's own timeout: one hour's read and writes must still fit.
SAFETY_MARGIN_MS = int(os.environ.get("LITELLM_MLFLOW_ROLLUP_SAFETY_MARGIN_MS", "240000"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deadline = time.monotonic() + max(0, context.get_remaining_time_in_millis() - SAFETY_MARGIN_MS) / 1000
    report = dataclasses.asdict(rollup_from_env(deadline))
    logger.info("rollup pass done", extra=report)
    return report
