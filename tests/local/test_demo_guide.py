"""What the demo prints after its summary: where each question is answered in the MLflow UI."""

from __future__ import annotations

from litellm_mlflow.local.demo import where_to_look


def test_the_demo_names_each_view_with_its_link() -> None:
    lines = where_to_look("http://127.0.0.1:5000/#/experiments/7")
    links = {line.split()[0]: line.split()[1] for line in lines[1:] if not line.startswith("           ")}
    assert links == {
        "Overview": "http://127.0.0.1:5000/#/experiments/7",
        "Sessions": "http://127.0.0.1:5000/#/experiments/7/traces?groupBy=session",
        "Traces": "http://127.0.0.1:5000/#/experiments/7/traces",
        "Runs": "http://127.0.0.1:5000/#/experiments/7/runs",
    }
