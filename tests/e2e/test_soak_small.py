"""The small soak inside `make test`: 600 events through callback -> SQS -> consumer -> MLflow with an SQS outage,
duplicate deliveries, poison messages and one consumer invocation killed mid-batch. Nothing lost, nothing doubled.
(`make soak` runs the full 10,000-event version with MLflow restarts too.)"""

from __future__ import annotations

import pytest

from bench.soak import SoakConfig, print_report, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_small_soak_loses_and_doubles_nothing(tmp_path):
    config = SoakConfig(
        events=600,
        workers=2,
        threads=4,
        duplicate_share=0.02,
        poison_share=0.01,
        mlflow_restarts=0,
        sqs_outage_s=4.0,
        visibility_timeout_s=4,
        max_receive_count=6,
        batch_size=200,
        max_backoff_s=4.0,
        timeout_s=600,
        workdir=tmp_path,
    )
    report = run_soak(config, out=lambda line: None)
    print_report(report)
    assert report.ok, report.problems
    assert report.expected_events == 600
    assert report.traces_found == 600 and report.missing == 0 and report.duplicated == 0
    assert report.duplicates_published > 0, "the run must actually publish duplicates"
    assert report.poison_sent == 6 and report.dlq_poison_distinct == 6 and report.dlq_not_poison == 0
    assert report.consumer_crashes == 1
    assert report.metric_points == 600
