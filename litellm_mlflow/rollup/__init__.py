"""Usage summaries: one MLflow run per model group and per team, with per-hour and per-day figures and running
totals, computed from the traces MLflow stored once each window has closed. Entry point: `run_rollup_from_env()`
(the rollup Lambda and the local stack's periodic task)."""
