"""Local servers: a port the OS picked for a server but another process took first does not fail its first start."""

from __future__ import annotations

import socket
import urllib.request

from litellm_mlflow.local.servers import LOOPBACK, MlflowServer


def test_an_mlflow_server_whose_picked_port_was_taken_starts_on_another(tmp_path) -> None:
    server = MlflowServer(tmp_path / "mlflow")
    taken = server.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((LOOPBACK, taken))
        squatter.listen()
        server.start()
        try:
            assert server.port != taken
            with urllib.request.urlopen(f"{server.url}/health", timeout=10) as answer:
                assert answer.status == 200
        finally:
            server.stop()
