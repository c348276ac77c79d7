"""The MLflow sink: LLM call events -> one trace per call (the usage rollup summarises them), in bulk, with per-event
failures so nothing is acknowledged before it is stored. Entry point: `MlflowSink.from_env().write(events, deadline)`.
"""

from litellm_mlflow.sink.writer import MlflowSink, SinkConfigError, SinkSettings, WriteResult

__all__ = ["MlflowSink", "SinkConfigError", "SinkSettings", "WriteResult"]
