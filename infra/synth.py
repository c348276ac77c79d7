"""`make synth`: synthesize the app in-process (no CDK CLI needed), bundle the real layer, report its size.

Usage: python -m infra.synth [-c key=value ...] [--outdir cdk.out]
Fails (exit 1) on an invalid context value, a region lacking what the stack creates (`-c region=...`, else
CDK_DEFAULT_REGION / AWS_REGION / AWS_DEFAULT_REGION), a pip failure, a layer over budget, any unacknowledged
cdk-nag finding (printed with the id to acknowledge), or any cfn-lint error in a synthesized template.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from infra.layer_bundling import LAYER_BUDGET_BYTES, LayerBundlingError, directory_size_bytes
from infra.mlflow_arn import InvalidMlflowArnError
from infra.regions import RegionUnavailable, deploy_region
from infra.settings import SettingsError
from infra.template_lint import DEFAULT_LINT_REGION, lint_cloud_assembly

LAYER_MARKER = Path("python") / "litellm_mlflow"


def parse_context(pairs: list[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"-c expects key=value, got {pair!r}")
        context[key] = value
    return context


def layer_asset_dir(outdir: Path, stack_name: str) -> Path:
    """The staged layer directory of this synth (found through the stack's asset manifest, not by globbing,
    so stale assets from earlier synths in the same cdk.out never count)."""
    manifest = json.loads((outdir / f"{stack_name}.assets.json").read_text())
    for asset in manifest["files"].values():
        path = outdir / asset["source"]["path"]
        if (path / LAYER_MARKER).is_dir():
            return path
    raise LayerBundlingError(f"no bundled layer (with {LAYER_MARKER}) among the assets in {outdir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--outdir", default="cdk.out")
    args = parser.parse_args(argv)
    outdir = Path(args.outdir).resolve()

    from infra.app import build_app  # imported late: jsii starts node on import

    started = time.monotonic()
    context = parse_context(args.context)
    try:
        app, stack = build_app(context, outdir=str(outdir))
        app.synth()
    except (SettingsError, InvalidMlflowArnError, RegionUnavailable, LayerBundlingError) as error:
        print(f"synth failed: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # jsii surfaces cdk-nag's ValidationFailed (and other JS errors) as this
        print(f"synth failed: {error}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started

    region = deploy_region(context.get)
    findings = lint_cloud_assembly(outdir, region)
    errors = [f"{name}: {finding}" for name, found in findings.items() for finding in found if finding.is_error]
    for name, found in findings.items():
        for finding in found:
            if not finding.is_error:
                print(f"cfn-lint warning {name}: {finding}")
    lint_region = region or f"{DEFAULT_LINT_REGION} (no region set; pass -c region=... to check yours)"
    print(f"cfn-lint: {len(findings)} template(s) for {lint_region}, {len(errors)} error(s)")
    if errors:
        for line in errors:
            print(f"cfn-lint error {line}", file=sys.stderr)
        print("synth failed: cfn-lint found errors", file=sys.stderr)
        return 1

    layer_dir = layer_asset_dir(outdir, stack.stack_name)
    size = directory_size_bytes(layer_dir)
    print(f"stack {stack.stack_name}: MLflow {stack.mlflow.kind.value}, cdk-nag AwsSolutions clean")
    print(
        f"layer unzipped: {size / 1e6:.1f} MB ({size} bytes; budget {LAYER_BUDGET_BYTES / 1e6:.0f} MB) at {layer_dir}"
    )
    print(f"synth took {elapsed:.1f} s; cloud assembly in {outdir}")
    if size > LAYER_BUDGET_BYTES:
        print("synth failed: the layer is over budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
