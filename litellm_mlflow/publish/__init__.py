"""Runs inside the LiteLLM proxy (or an SDK process): the callback, its background SQS sender, the shutdown hook.

Never imports mlflow: the proxy's image needs only litellm and boto3.
"""
