"""Runs in the presign Lambda: presigned MLflow UI links for a tracking server, an MLflow App or a plain URL."""
