"""The docs match the code: every setting is in the README table and in .env.example."""

from __future__ import annotations

import pytest

from shared.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("document", ["README.md", ".env.example"])
def test_every_setting_is_documented(document: str) -> None:
    text = (PROJECT_ROOT / document).read_text()
    missing = [
        f"COINSTREAM_{name.upper()}"
        for name in Settings.model_fields
        if f"COINSTREAM_{name.upper()}" not in text
    ]
    assert missing == [], f"{document} does not mention {', '.join(missing)}"


def test_readme_names_the_two_commands() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "make run" in readme
    assert "make test" in readme
