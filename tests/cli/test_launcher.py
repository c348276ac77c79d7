"""The console script without the 'cli' extra: one line naming the extra, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_BOTO3 = (
    "import sys; sys.modules['boto3'] = None; "  # what an install without extras looks like to the import system
    "from litellm_mlflow.cli.launcher import main; sys.exit(main())"
)


def test_command_without_its_extra_names_the_extra_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-c", WITHOUT_BOTO3], capture_output=True, text=True, check=False)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "litellm-mlflow: the command needs the 'cli' extra (boto3 is not installed): pip install 'litellm-mlflow[cli]'"
    ]


def test_command_with_its_extra_runs_the_cli() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from litellm_mlflow.cli.launcher import main; sys.argv[1:] = ['--version']; sys.exit(main())",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("litellm-mlflow ")
