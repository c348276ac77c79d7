"""Monitoring: the alarm topic, the usage alarms and the dashboard, and the check that every metric they read is one
the real consumer emits (same namespace, name and dimension set), so a rename on one side only fails here."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import litellm
import pytest

from litellm_mlflow import usage_metrics as names
from litellm_mlflow.cli import stack_outputs
from tests.infra.conftest import Synth
from tests.support.emf import emf_documents, emf_metrics
from tests.support.litellm_events import FakeLambdaContext, load_consumer_handler, sqs_event, sqs_record

MetricKey = tuple[str, str, frozenset[str]]  # namespace, metric name, dimension names

_SEARCH = re.compile(r"SEARCH\('\{([^,}]+),([^}]+)\} MetricName=\"([^\"]+)\"'")
_INSIGHTS = re.compile(r'SELECT \w+\("([^"]+)"\) FROM SCHEMA\("([^"]+)", "([^"]+)"\)')


def dashboard_body(synth: Synth) -> dict[str, Any]:
    """The dashboard's JSON with CloudFormation references replaced by a placeholder."""
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else "REF" for part in parts))


def referenced_in_dashboard(body: dict[str, Any]) -> set[MetricKey]:
    """Custom-namespace metrics the widgets read: plain metric arrays and SEARCH expressions."""
    found: set[MetricKey] = set()
    for widget in body["widgets"]:
        for line in widget.get("properties", {}).get("metrics") or []:
            fields = [item for item in line if isinstance(item, str)]
            if fields and fields[0] not in ("AWS/SQS", "AWS/Lambda", "."):
                found.add((fields[0], fields[1], frozenset(fields[2::2])))
            for item in line:
                if isinstance(item, dict) and "expression" in item:
                    for namespace, dimensions, metric in _SEARCH.findall(item["expression"]):
                        found.add((namespace, metric, frozenset(dimensions.split(","))))
    return found


def referenced_in_alarms(synth: Synth) -> set[MetricKey]:
    found: set[MetricKey] = set()
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("Namespace", "").startswith("AWS/"):
            continue
        if "MetricName" in props:
            found.add((props["Namespace"], props["MetricName"], frozenset(d["Name"] for d in props["Dimensions"])))
        for query in props.get("Metrics", []):
            for metric, namespace, dimension in _INSIGHTS.findall(query.get("Expression", "")):
                found.add((namespace, metric, frozenset([dimension])))
    return found


def consumer_environment(synth: Synth) -> dict[str, str]:
    (consumer,) = [
        f["Properties"]
        for f in synth.resources("AWS::Lambda::Function").values()
        if f["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME") == "litellm-mlflow-consumer"
    ]
    return {k: v for k, v in consumer["Environment"]["Variables"].items() if isinstance(v, str)}


def emitted_by_consumer(stdout: str) -> set[MetricKey]:
    return {(m.namespace, m.name, frozenset(m.dimensions)) for m in emf_metrics(emf_documents(stdout))}


@pytest.fixture
def emitted(mlflow_server, app_mode: Synth, litellm_capture, experiment_name, monkeypatch, capsys) -> set[MetricKey]:
    """What the real consumer prints for a real batch (a success and a failure of a team's calls), run with the
    environment the stack gives it."""
    for key, value in consumer_environment(app_mode).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    for response in ("fine", "litellm.RateLimitError"):
        with contextlib.suppress(litellm.RateLimitError):
            litellm.completion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                mock_response=response,
                metadata={"user_api_key_team_alias": "search"},
            )
    payloads = litellm_capture.wait_for(2)
    handler = load_consumer_handler()
    capsys.readouterr()
    assert handler(sqs_event([sqs_record(p) for p in payloads]), FakeLambdaContext()) == {"batchItemFailures": []}
    return emitted_by_consumer(capsys.readouterr().out)


def test_dashboard_and_alarms_read_only_metrics_the_consumer_emits(
    emitted: set[MetricKey], app_mode: Synth, existing_server_mode: Synth
) -> None:
    dashboard = referenced_in_dashboard(dashboard_body(app_mode))
    alarms = referenced_in_alarms(app_mode) | referenced_in_alarms(existing_server_mode)
    assert dashboard - emitted == set()
    assert alarms - emitted == set()
    # Everything the consumer emits about usage is on the dashboard.
    usage = {key for key in emitted if key[2] in (frozenset([names.MODEL_GROUP]), frozenset([names.TEAM]))}
    assert usage - dashboard == set()
    assert len(dashboard) >= 10 and len(alarms) >= 4


def test_a_name_renamed_on_one_side_is_caught(emitted: set[MetricKey], app_mode: Synth) -> None:
    body = json.dumps(dashboard_body(app_mode))
    renamed = json.loads(body.replace(f'MetricName=\\"{names.ERROR_RATE}\\"', 'MetricName=\\"ErrorRatio\\"'))
    assert referenced_in_dashboard(renamed) - emitted == {
        (names.NAMESPACE, "ErrorRatio", frozenset([names.MODEL_GROUP]))
    }
    regrouped = json.loads(body.replace(f"{{{names.NAMESPACE},{names.MODEL_GROUP}}}", f"{{{names.NAMESPACE},Model}}"))
    assert {key[1] for key in referenced_in_dashboard(regrouped) - emitted} >= {names.CALLS, names.LATENCY}


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(app_mode: Synth, existing_server_mode: Synth) -> None:
    (topic,) = app_mode.resources("AWS::SNS::Topic").values()
    (key_id,) = app_mode.resources("AWS::KMS::Key")
    key = app_mode.raw["Resources"][key_id]["Properties"]
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["EnableKeyRotation"] is True
    (grant,) = [s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchAlarmsPublish"]
    assert grant["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert app_mode.resources("AWS::SNS::Subscription") == {}
    (subscription,) = existing_server_mode.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "llm-ops@example.com"
    topic_ref = {"Ref": app_mode.logical_id(app_mode.stack.alarm_topic.topic)}
    assert app_mode.raw["Outputs"]["AlarmTopicArn"]["Value"] == topic_ref
    for synth in (app_mode, existing_server_mode):
        ref = {"Ref": synth.logical_id(synth.stack.alarm_topic.topic)}
        assert all(a["Properties"]["AlarmActions"] == [ref] for a in synth.resources("AWS::CloudWatch::Alarm").values())


def _usage_alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """Usage alarms by a short name: the Insights query's metric, or Team:<name> for team budgets."""
    found = {}
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if "Metrics" in props:
            (query,) = props["Metrics"]
            found[_INSIGHTS.search(query["Expression"]).group(1)] = props
        elif props["Namespace"] == names.NAMESPACE:
            found[f"Team:{props['Dimensions'][0]['Value']}"] = props
    return found


def test_usage_alarm_defaults(app_mode: Synth) -> None:
    alarms = _usage_alarms(app_mode)
    assert set(alarms) == {names.ERROR_RATE, names.COST}  # no team budgets, no-calls alarm off by default
    error_rate = alarms[names.ERROR_RATE]
    assert error_rate["Metrics"][0]["Expression"].endswith(f'GROUP BY "{names.MODEL_GROUP}"')
    assert (error_rate["Threshold"], error_rate["EvaluationPeriods"], error_rate["DatapointsToAlarm"]) == (20, 3, 3)
    assert error_rate["Metrics"][0]["Period"] == 300
    spend = alarms[names.COST]
    assert (spend["Threshold"], spend["Metrics"][0]["Period"]) == (10, 3600)
    assert consumer_environment(app_mode)[names.TEAM_METRICS_ENV] == "true"


def test_usage_alarms_follow_the_context(existing_server_mode: Synth) -> None:
    alarms = _usage_alarms(existing_server_mode)
    assert set(alarms) == {names.ERROR_RATE, names.COST, names.CALLS, "Team:search", "Team:ads"}
    assert (alarms[names.ERROR_RATE]["Threshold"], alarms[names.ERROR_RATE]["EvaluationPeriods"]) == (10, 2)
    assert alarms[names.COST]["Threshold"] == 2.5
    team = alarms["Team:search"]
    assert (team["MetricName"], team["Statistic"], team["Period"], team["Threshold"]) == (names.COST, "Sum", 3600, 1.5)
    assert alarms["Team:ads"]["Threshold"] == 0.75
    no_calls = alarms[names.CALLS]
    assert (no_calls["ComparisonOperator"], no_calls["Threshold"]) == ("LessThanThreshold", 1)
    assert (no_calls["TreatMissingData"], no_calls["Metrics"][0]["Period"]) == ("breaching", 1800)
    assert consumer_environment(existing_server_mode)[names.TEAM_METRICS_ENV] == "false"


def test_dashboard_shows_health_usage_and_alarms_and_is_an_output(app_mode: Synth) -> None:
    body = dashboard_body(app_mode)
    titles = [w["properties"].get("title", w["properties"].get("markdown")) for w in body["widgets"]]
    for wanted in ("Queue", "Dead-letter", "Events written", "errors and throttles", "duration", "Calls (left)",
                   "Error rate", "Latency", "Tokens", "by model group", "by team", "Alarms"):  # fmt: skip
        assert any(wanted in title for title in titles), wanted
    (alarm_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(app_mode.resources("AWS::CloudWatch::Alarm"))
    assert {stack_outputs.DASHBOARD_URL, stack_outputs.ALARM_TOPIC_ARN} <= set(
        app_mode.raw["Outputs"]
    )  # what info reads
    url = app_mode.raw["Outputs"][stack_outputs.DASHBOARD_URL]["Value"]["Fn::Join"][1]
    assert url[0] == "https://" and "#dashboards/dashboard/LitellmMlflow-" in "".join(
        p for p in url if isinstance(p, str)
    )
