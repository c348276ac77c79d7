"""Where a running local stack is: written by `LocalStack.start()`, read by `config`, `check`, `info` and `login`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_WORKDIR = Path(".local-stack")
STATE_FILE = "stack.json"
REGION = "us-east-1"


@dataclass
class LocalStackState:
    """What another command (`config`, `check`, `info`, `login`) needs to find a running local stack."""

    mlflow_url: str
    sqs_endpoint: str
    queue_url: str
    dlq_url: str
    proxy_url: str
    master_key: str
    experiment: str
    region: str = REGION

    def save(self, workdir: Path) -> Path:
        path = Path(workdir) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, workdir: Path = DEFAULT_WORKDIR) -> LocalStackState:
        path = Path(workdir) / STATE_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"no local stack state at {path}: start one with `litellm-mlflow demo --keep-running`"
            )
        return cls(**json.loads(path.read_text()))
