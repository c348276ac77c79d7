"""Which AWS client methods the Lambda handlers call, found statically (ast), and whether a botocore has them.

A call counts when its receiver is a name bound to `<anything>.client("<service>")` or a name equal to a service
some file creates a client for (presign passes its `sagemaker` client on as a parameter of that name). The
methods every client has (paginators, waiters) are not service operations and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

from botocore import xform_name
from botocore.loaders import Loader

CLIENT_BUILTINS = {"can_paginate", "close", "get_paginator", "get_waiter", "generate_presigned_url"}


def _client_service(node: ast.AST) -> str | None:
    """'sagemaker' for `boto3.client("sagemaker", ...)` / `session.client("sagemaker")`, else None."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "client"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def client_method_calls(files: list[Path]) -> dict[str, dict[str, set[str]]]:
    """service -> method -> the files calling it, over `files`."""
    trees = {path: ast.parse(path.read_text()) for path in files}
    receivers: dict[str, str] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            service = _client_service(node)
            if service is not None:
                receivers.setdefault(service, service)
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                service = _client_service(node.value)
                if service is None:
                    continue
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        receivers[target.id] = service
    calls: dict[str, dict[str, set[str]]] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in receivers
                and node.func.attr not in CLIENT_BUILTINS
            ):
                service = receivers[node.func.value.id]
                calls.setdefault(service, {}).setdefault(node.func.attr, set()).add(path.name)
    return calls


def botocore_operations(botocore_data_dir: Path, services: set[str]) -> dict[str, set[str]]:
    """service -> its client method names, from the service models under one botocore's `data` directory."""
    loader = Loader(extra_search_paths=[str(botocore_data_dir)], include_default_search_paths=False)
    return {
        service: {xform_name(name) for name in loader.load_service_model(service, "service-2")["operations"]}
        for service in services
    }


def missing_methods(calls: dict[str, dict[str, set[str]]], operations: dict[str, set[str]]) -> list[str]:
    """'service.method (files)' for every call the given botocore lacks."""
    return [
        f"{service}.{method} ({', '.join(sorted(users))})"
        for service, methods in sorted(calls.items())
        for method, users in sorted(methods.items())
        if method not in operations.get(service, set())
    ]
