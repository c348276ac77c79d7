"""CPU per event of `events.encode_event` (redaction, repairs, serialisation): this tree vs a baseline revision.

Side by side in one process, interleaved run by run: the baseline's events.py (and redaction.py, when it has one) is
loaded from git (default: the revision before the hostile-input work; `--baseline 766b4c5` is the encoder before
issue 13's CPU work), the current one from the tree. Payloads are real StandardLoggingPayloads
from LiteLLM mock calls (as in bench_publisher), each with a fresh call id; a second set carries a longer prompt with
non-ASCII text. Reported: median over runs of thread CPU per event, and the ratio ours / baseline.

    python -m bench.bench_encode [--runs 7] [--events 2000] [--baseline 9e9fca4]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.bench_publisher import fresh, typical_payloads
from bench.common import median, write_result

COMMAND = "python -m bench.bench_encode"
REPO_ROOT = Path(__file__).resolve().parents[1]


def load_baseline(revision: str):
    """The baseline's events.py as its own module, with the redaction module of the same revision if it has one
    (each imports nothing of ours but that)."""
    workdir = Path(tempfile.mkdtemp())
    suffix = revision.replace("/", "_")
    source = _git_show(revision, "litellm_mlflow/events.py")
    if "litellm_mlflow.redaction" in source:
        redaction_name = f"baseline_redaction_{suffix}"
        _load(redaction_name, _git_show(revision, "litellm_mlflow/redaction.py"), workdir)
        source = source.replace("from litellm_mlflow.redaction import", f"from {redaction_name} import")
    return _load(f"baseline_events_{suffix}", source, workdir)


def _git_show(revision: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), "show", f"{revision}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def _load(name: str, source: str, workdir: Path):
    path = workdir / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def cpu_ms_per_event(encode, payloads: list[dict]) -> float:
    started = time.thread_time()
    for payload in payloads:
        encode(payload)
    return (time.thread_time() - started) * 1000 / len(payloads)


def long_prompt(payload: dict) -> dict:
    text = "日本語のプロンプトと English text, mixed: 要約してください。 " * 60
    return {**payload, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--baseline", default="9e9fca4")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    from litellm_mlflow import events

    baseline = load_baseline(args.baseline)
    samples = typical_payloads()
    sets = {
        "typical chat": [fresh(samples[i % len(samples)]) for i in range(args.events)],
        "long non-ASCII prompt": [long_prompt(fresh(samples[i % len(samples)])) for i in range(args.events // 4)],
    }
    for payloads in sets.values():  # warm both (regex compilation, caches)
        for module in (events, baseline):
            cpu_ms_per_event(module.encode_event, payloads[:50])
    results: dict[str, dict[str, list[float]]] = {name: {"ours": [], "baseline": []} for name in sets}
    for _ in range(args.runs):
        for name, payloads in sets.items():
            results[name]["baseline"].append(cpu_ms_per_event(baseline.encode_event, payloads))
            results[name]["ours"].append(cpu_ms_per_event(events.encode_event, payloads))
    rows = [
        {
            "metric": f"encode_event CPU per event, {name}",
            "ours": round(median(values["ours"]), 4),
            "baseline": round(median(values["baseline"]), 4),
            "unit": "ms",
            "note": f"baseline = events.py at {args.baseline}",
        }
        for name, values in results.items()
    ]
    title = "Event encoding CPU (redaction + repairs + JSON), ours vs baseline"
    command = COMMAND if not argv else f"{COMMAND} {' '.join(argv)}"
    write_result("encode", title, command, rows, args.runs)


if __name__ == "__main__":
    main()
