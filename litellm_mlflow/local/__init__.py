"""Runs on a developer's machine: local MLflow and SQS servers, the SQS event source emulator, the demo.

Not shipped in the Lambda layer.
"""
