"""cfn-lint over synthesized CloudFormation templates: an error fails `make synth` (and the tests), warnings are
shown. Linted for the deploy region when one is known, else for cfn-lint's default region (us-east-1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_LINT_REGION = "us-east-1"


@dataclass(frozen=True)
class LintFinding:
    rule_id: str
    message: str
    path: str

    @property
    def is_error(self) -> bool:
        return self.rule_id.startswith("E")

    def __str__(self) -> str:
        return f"{self.rule_id} {self.message} ({self.path})"


def lint_template(template_text: str, region: str | None = None) -> list[LintFinding]:
    from cfnlint.api import lint

    return [
        LintFinding(rule_id=match.rule.id, message=match.message, path="/".join(str(p) for p in match.path))
        for match in lint(template_text, regions=[region or DEFAULT_LINT_REGION])
    ]


def lint_cloud_assembly(outdir: Path, region: str | None = None) -> dict[str, list[LintFinding]]:
    """template file name -> its findings, for every template in a cloud assembly directory."""
    return {path.name: lint_template(path.read_text(), region) for path in sorted(outdir.glob("*.template.json"))}
