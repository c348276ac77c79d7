"""`make synth`: synthesize the app in-process (no CDK CLI needed), bundle the real layer, report its size.

Usage: python -m infra.synth [-c key=value ...] [--outdir cdk.out]
Fails (exit 1) on an invalid context value, a pip failure, a layer over budget, or any unacknowledged cdk-nag
finding; cdk-nag prints each finding with the id to acknowledge.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from infra.layer_bundling import LAYER_BUDGET_BYTES, LayerBundlingError, directory_size_bytes
from infra.mlflow_arn import InvalidMlflowArnError
from infra.settings import SettingsError

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
    try:
        app, stack = build_app(parse_context(args.context), outdir=str(outdir))
        app.synth()
    except (SettingsError, InvalidMlflowArnError, LayerBundlingError) as error:
        print(f"synth failed: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:  # jsii surfaces cdk-nag's ValidationFailed (and other JS errors) as this
        print(f"synth failed: {error}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started

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
