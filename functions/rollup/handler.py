"""Rollup Lambda: on an EventBridge schedule, one pass of the usage rollup (closed hours of stored traces -> one
MLflow run per model group and per team). Thin: the deadline from Lambda's clock, the pass in the library, a log
line with what it did (hours written, slices read and saved). A pass that runs out of time stops starting slices,
saves the slices it read, and the next scheduled pass reads the rest of the hour.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from aws_lambda_powertools import Logger

from litellm_mlflow.rollup.service import rollup_from_env

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "litellm-mlflow-rollup")

logger = Logger()
# The library's progress lines ("hour N: K slices saved") reach the runtime's log between the pass's start and its
# report, so a pass that runs long shows how far it got.
logging.getLogger("litellm_mlflow.rollup").setLevel(logging.INFO)

# Stop starting slices this long before Lambda's own timeout: the slices in flight (one minute of traces each), their
# save and an hour's writes must still fit.
SAFETY_MARGIN_MS = int(os.environ.get("LITELLM_MLFLOW_ROLLUP_SAFETY_MARGIN_MS", "240000"))
# Give up a slice still being read this long before the timeout (it is read again next time), so the save of the
# others is never cut off by the timeout.
GIVE_UP_MARGIN_MS = int(os.environ.get("LITELLM_MLFLOW_ROLLUP_GIVE_UP_MARGIN_MS", "45000"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now, remaining_ms = time.monotonic(), context.get_remaining_time_in_millis()
    deadline = now + max(0, remaining_ms - SAFETY_MARGIN_MS) / 1000
    give_up_at = now + max(0, remaining_ms - GIVE_UP_MARGIN_MS) / 1000
    report = dataclasses.asdict(rollup_from_env(deadline, give_up_at=give_up_at))
    logger.info("rollup pass done", extra=report)
    return report
