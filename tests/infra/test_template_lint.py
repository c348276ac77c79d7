"""cfn-lint finds no error in any synthesized template, and a region lacking what the stack creates is refused
before anything is built, in one line that names the regions that would work."""

from __future__ import annotations

import json

import pytest

from infra.app import build_app
from infra.mlflow_arn import MlflowKind
from infra.regions import (
    FUNCTION_URL_TYPE,
    MLFLOW_TYPES,
    RegionUnavailable,
    check_region,
    known_regions,
    regions_with,
    required_types,
)
from infra.synth import main as synth_main
from infra.template_lint import lint_template
from tests.infra.conftest import EXISTING_SERVER_ARN, Synth


@pytest.mark.parametrize("mode", ["app_mode", "tracking_server_mode", "existing_server_mode", "existing_app_mode"])
def test_cfn_lint_finds_no_error_in_any_mode(mode: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(mode)
    findings = lint_template(json.dumps(synth.raw), "us-east-1")
    assert [str(f) for f in findings if f.is_error] == []


def test_cfn_lint_errors_are_reported_as_errors(app_mode: Synth) -> None:
    broken = json.loads(json.dumps(app_mode.raw))
    queue = next(r for r in broken["Resources"].values() if r["Type"] == "AWS::SQS::Queue")
    queue["Properties"]["MessageRetentionPeriod"] = 30  # SQS accepts 60-1209600 seconds
    assert any(f.is_error and f.rule_id.startswith("E3") for f in lint_template(json.dumps(broken), "us-east-1"))


def _region_without(resource_type: str) -> str:
    return next(r for r in known_regions() if r not in regions_with(resource_type) and not r.startswith(("cn-", "us-")))


def test_region_lists_come_from_cfn_lint_and_differ_by_kind() -> None:
    app_regions = set(regions_with(MLFLOW_TYPES[MlflowKind.APP]))
    server_regions = set(regions_with(MLFLOW_TYPES[MlflowKind.TRACKING_SERVER]))
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= app_regions < set(known_regions())
    assert server_regions - app_regions  # tracking servers reach regions the App does not (yet)
    assert "us-east-1" in regions_with(FUNCTION_URL_TYPE)


def test_synth_refuses_a_region_without_mlflow_apps_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    region = _region_without(MLFLOW_TYPES[MlflowKind.APP])
    assert synth_main(["-c", f"region={region}", "--outdir", "unused-cdk.out"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"not available in {region}" in err and "AWS::SageMaker::MlflowApp" in err
    assert "us-east-1" in err.split(":", 2)[-1] and f"{region}," not in err


def test_region_check_follows_the_chosen_kind_and_reuse() -> None:
    only_servers = next(
        r
        for r in regions_with(MLFLOW_TYPES[MlflowKind.TRACKING_SERVER])
        if r not in regions_with(MLFLOW_TYPES[MlflowKind.APP]) and r in regions_with(FUNCTION_URL_TYPE)
    )
    check_region(only_servers, required_types(MlflowKind.TRACKING_SERVER, creates_mlflow=True))
    check_region(only_servers, required_types(MlflowKind.APP, creates_mlflow=False))  # reusing an App elsewhere
    with pytest.raises(RegionUnavailable, match="MlflowApp"):
        check_region(only_servers, required_types(MlflowKind.APP, creates_mlflow=True))
    no_urls = _region_without(FUNCTION_URL_TYPE)
    with pytest.raises(RegionUnavailable, match="AWS::Lambda::Url"):
        build_app({"region": no_urls, "mlflow_arn": EXISTING_SERVER_ARN})
    with pytest.raises(RegionUnavailable, match="unknown region 'mars-1'"):
        check_region("mars-1", [FUNCTION_URL_TYPE])
