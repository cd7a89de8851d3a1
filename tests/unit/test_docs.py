"""The docs match the code and each other.

Every setting is in the settings table (docs/settings.md) and in .env.example, and the docs name
no variable that is not a setting. The README links every page under docs/, each link between
the pages lands on a file and heading that exist, and every screenshot is shown somewhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shared.settings import PROJECT_ROOT, Settings

DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"
PAGES = sorted(DOCS.glob("*.md"))

NOT_SETTINGS = {
    "COINSTREAM_ENV_FILE",
    "COINSTREAM_TEST_PORT_OFFSET",
    "COINSTREAM_CHAOS_LONG_MINUTES",
    "COINSTREAM_CHAOS_WORKER_KILLS",
    "COINSTREAM_CHAOS_INGESTOR_KILLS",
    "COINSTREAM_FUZZ_EXAMPLES",
}
"""Variables the docs name that are read outside ``Settings``: which env file to read (by
``Settings`` itself, before any field), the tests' port offset (by
``tests/harness/environment.py``) and the fault suite's run length and kill counts (by
``tests/chaos``) and the fuzz test's page count (by
``tests/integration/test_fuzz_hostile_pages.py``)."""

# [text](target) and ![alt](target); a target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def setting_variables() -> list[str]:
    return [f"COINSTREAM_{name.upper()}" for name in Settings.model_fields]


def without_code_blocks(markdown: str) -> str:
    return FENCE.sub("", markdown)


def relative_links(document: Path) -> list[str]:
    """The targets of the links and images in ``document`` that point inside the repository."""
    targets = LINK.findall(without_code_blocks(document.read_text()))
    return [target for target in targets if not urlsplit(target).scheme]


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    headings = HEADING.findall(without_code_blocks(document.read_text()))
    return {heading_anchor(heading) for heading in headings}


@pytest.mark.parametrize("document", ["docs/settings.md", ".env.example"])
def test_every_setting_is_documented(document: str) -> None:
    text = (PROJECT_ROOT / document).read_text()
    missing = [variable for variable in setting_variables() if variable not in text]
    assert missing == [], f"{document} does not mention {', '.join(missing)}"


def test_every_setting_has_a_row_in_the_settings_table() -> None:
    text = (DOCS / "settings.md").read_text()
    rows = set(re.findall(r"^\| `(COINSTREAM_[A-Z0-9_]+)` \|", text, re.MULTILINE))
    missing = [variable for variable in setting_variables() if variable not in rows]
    assert missing == [], f"docs/settings.md has no table row for {', '.join(missing)}"


@pytest.mark.parametrize("document", [README, *PAGES], ids=lambda path: path.name)
def test_the_docs_name_only_variables_that_exist(document: Path) -> None:
    named = set(re.findall(r"COINSTREAM_[A-Z0-9_]*[A-Z0-9]", document.read_text()))
    unknown = sorted(named - set(setting_variables()) - NOT_SETTINGS)
    assert unknown == [], f"{document.name} names variables that are not settings: {unknown}"


def test_readme_names_the_two_commands() -> None:
    readme = README.read_text()
    assert "make run" in readme
    assert "make test" in readme


def test_readme_lists_every_default_port() -> None:
    """The services table gives each port's default, so it must change when a default does."""
    fields = Settings.model_fields
    ports = [field.default for name, field in fields.items() if name.endswith("_port")]
    ports.append(int(str(fields["kafka_bootstrap_servers"].default).rsplit(":", 1)[1]))
    ports.append(urlsplit(str(fields["bigquery_emulator_url"].default)).port)
    readme = README.read_text()
    missing = [port for port in ports if f"`{port}`" not in readme]
    assert missing == [], f"the README's services table does not give the ports {missing}"


def test_readme_links_every_docs_page_and_each_link_exists() -> None:
    linked = {
        (PROJECT_ROOT / urlsplit(target).path).resolve()
        for target in relative_links(README)
        if urlsplit(target).path.startswith("docs/") and target.split("#")[0].endswith(".md")
    }
    missing = sorted(str(path.relative_to(PROJECT_ROOT)) for path in linked if not path.is_file())
    assert missing == [], f"the README links docs pages that do not exist: {missing}"
    unlinked = sorted(page.name for page in PAGES if page.resolve() not in linked)
    assert unlinked == [], f"the README does not link these docs pages: {unlinked}"


def leads_nowhere(document: Path, target: str) -> bool:
    """True when ``target``, linked from ``document``, is no file, or no heading of its page."""
    parts = urlsplit(target)
    destination = (document.parent / parts.path).resolve() if parts.path else document
    if not destination.exists():
        return True
    if parts.fragment and destination.suffix == ".md":
        return parts.fragment not in anchors(destination)
    return False


@pytest.mark.parametrize("document", [README, *PAGES], ids=lambda path: path.name)
def test_every_relative_link_lands_on_a_file_and_heading(document: Path) -> None:
    broken = [target for target in relative_links(document) if leads_nowhere(document, target)]
    assert broken == [], f"{document.name} has links that lead nowhere: {broken}"


def test_every_screenshot_is_shown() -> None:
    shown = {
        (document.parent / urlsplit(target).path).resolve()
        for document in [README, *PAGES]
        for target in relative_links(document)
    }
    hidden = sorted(image.name for image in DOCS.glob("*.png") if image.resolve() not in shown)
    assert hidden == [], f"no page shows {hidden}"
