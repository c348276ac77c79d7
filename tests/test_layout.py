"""The layout's import rules, checked statically (imports inside functions count too):

- the proxy side (litellm_mlflow/publish) never imports mlflow: it runs inside the LiteLLM proxy;
- the consumer side (litellm_mlflow/sink and the consumer Lambda's handler) never imports litellm;
- the event contract (litellm_mlflow/events.py) imports neither side;
- nothing in the library imports infra/, bench/ or tests/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import import_graph

REPO_ROOT = Path(__file__).resolve().parents[1]

RULES = {
    "the proxy side imports mlflow": (import_graph.modules_under(REPO_ROOT, "litellm_mlflow/publish"), {"mlflow"}),
    "the consumer side imports litellm": (
        [*import_graph.modules_under(REPO_ROOT, "litellm_mlflow/sink"), "functions.consumer.handler"],
        {"litellm"},
    ),
    "the rollup imports litellm or the consumer": (
        [*import_graph.modules_under(REPO_ROOT, "litellm_mlflow/rollup"), "functions.rollup.handler"],
        {"litellm", "litellm_mlflow.publish", "litellm_mlflow.sink"},
    ),
    "the event contract imports a side": (
        ["litellm_mlflow.events"],
        {"litellm_mlflow.publish", "litellm_mlflow.sink", "litellm", "mlflow"},
    ),
    "the library imports infra, bench or tests": (
        import_graph.modules_under(REPO_ROOT, "litellm_mlflow"),
        {"infra", "bench", "tests"},
    ),
}


@pytest.mark.parametrize("rule", RULES)
def test_layout_rule(rule: str) -> None:
    modules, forbidden = RULES[rule]
    assert modules, f"no modules found for {rule!r}: did the layout change?"
    broken = import_graph.violations(import_graph.reach(REPO_ROOT, modules), forbidden)
    assert not broken, f"{rule}:\n  " + "\n  ".join(broken)


def test_a_forbidden_import_two_modules_away_or_inside_a_function_is_found(tmp_path: Path) -> None:
    package = tmp_path / "litellm_mlflow"
    (package / "publish").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "publish" / "__init__.py").write_text("")
    (package / "publish" / "sender.py").write_text("from litellm_mlflow import helpers\n")
    (package / "helpers.py").write_text("def later():\n    from mlflow.tracing import x\n")
    reached = import_graph.reach(tmp_path, import_graph.modules_under(tmp_path, "litellm_mlflow/publish"))
    assert import_graph.violations(reached, {"mlflow"})[0] == (
        "litellm_mlflow.publish.sender -> litellm_mlflow.helpers -> mlflow"
    )


def test_a_package_init_on_the_way_counts(tmp_path: Path) -> None:
    package = tmp_path / "litellm_mlflow"
    (package / "sink").mkdir(parents=True)
    (package / "__init__.py").write_text("import litellm\n")
    (package / "sink" / "__init__.py").write_text("")
    (package / "sink" / "writer.py").write_text("import json\n")
    reached = import_graph.reach(tmp_path, ["litellm_mlflow.sink.writer"])
    assert import_graph.violations(reached, {"litellm"}) == ["litellm_mlflow -> litellm"]
    assert import_graph.violations(reached, {"litellm_mlflow.publish"}) == []
