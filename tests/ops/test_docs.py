"""The operations docs keep up with the code: every setting documented, every runbook present."""

from __future__ import annotations

import re
from pathlib import Path

from ecs.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _rows() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `([\w.]+)` \| `(ECS_[A-Z_]+)`", text, re.M))


def test_every_ecs_setting_has_a_row_in_configuration_md() -> None:
    """Each ECS setting (nested limits included) has a row naming its key and its ECS_* variable."""
    rows = {key for key, _ in _rows()}
    keys = set()
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            keys |= {f"{name}.{sub}" for sub in annotation.model_fields}
        else:
            keys.add(name)
    assert keys - rows == set(), "add these settings to docs/configuration.md"


def test_configuration_rows_name_the_right_variable() -> None:
    """The variable in each row is the key upper-cased with __ for nesting, behind ECS_."""
    for key, env in _rows():
        assert env == "ECS_" + key.replace(".", "__").upper(), key


def test_operations_md_has_every_runbook() -> None:
    """docs/operations.md holds every runbook the issue asks for, log drivers included."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (.+)$", text, re.M))
    for heading in (
        "Deploy",
        "Upgrade with zero downtime",
        "Scale up or down",
        "Rotate API keys",
        "Rotate the Cachet, Pingdom and SignalFx tokens",
        "Recover statusbridge state",
        "Read the logs",
        "Alerts on SignalFx",
        "Resources",
    ):
        assert heading in headings, f"docs/operations.md lacks '## {heading}'"
    for driver in ("json-file", "fluentd", "splunk"):
        assert f'log_driver = "{driver}"' in text
