"""The `litellm-mlflow` console script. The package installs without dependencies (each side picks its extra), so
the command first checks that its own extra is there and says which one to install instead of a traceback."""

from __future__ import annotations

import sys

INSTALL_HINT = "pip install 'litellm-mlflow[cli]'"


def main() -> int:
    try:
        from litellm_mlflow.cli.main import main as cli_main
    except ModuleNotFoundError as exc:
        print(
            f"litellm-mlflow: the command needs the 'cli' extra ({exc.name} is not installed): {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 3
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
