"""docs/settings.md, generated from the settings groups: `python -m shared.settings.docs`.

The page is written from the classes (each group's fields, defaults and descriptions, and which
processes read it), so it cannot fall behind them; tests/unit/test_settings_docs.py fails when
the file differs from what this module writes. ``--check`` does the same from the shell.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from shared.settings.addresses import AddressSettings
from shared.settings.coincap import CoinCapSettings
from shared.settings.common import PROJECT_ROOT, CommonSettings
from shared.settings.control import ControlSettings
from shared.settings.dashboard import DashboardSettings
from shared.settings.ingest import IngestSettings
from shared.settings.kafka import KafkaSettings
from shared.settings.local_stack import LocalStackSettings
from shared.settings.services import SERVICE_SETTINGS
from shared.settings.spark import SparkSettings
from shared.settings.stream import StreamSettings
from shared.settings.warehouse import WarehouseSettings

SETTINGS_PAGE = PROJECT_ROOT / "docs" / "settings.md"

GROUPS: list[tuple[str, type[CommonSettings]]] = [
    ("CoinCap", CoinCapSettings),
    ("Ingestors", IngestSettings),
    ("Kafka", KafkaSettings),
    ("Warehouse", WarehouseSettings),
    ("Stream worker", StreamSettings),
    ("Spark", SparkSettings),
    ("Control service", ControlSettings),
    ("Dashboard and Looker Studio", DashboardSettings),
    ("Service addresses", AddressSettings),
    ("Local stack", LocalStackSettings),
    ("Every process", CommonSettings),
]
"""Each group under the heading its section gets, in the page's order."""

INTRODUCTION = """\
# Settings

Every setting is an environment variable prefixed `COINSTREAM_`; a `.env` file in the working
directory is read too (copy `.env.example`, which lists every variable with its default). Secrets
such as the API key never appear in logs or reprs.

The settings come in groups, one module of `shared/settings/` each. A process reads and checks
only the groups it uses, so a bad value stops only the processes that read it (each stops at
start with one `coinstream: invalid settings: ...` line naming the variable). This page is
generated from those modules by `python -m shared.settings.docs`; edit the modules, not the page.
"""

ENV_FILE_ROW = (
    "| `COINSTREAM_ENV_FILE` | `.env` | Which env file to read instead of `.env` (tests use "
    "`/dev/null`). |"
)
"""Read by the settings themselves before any field, so it is no field of a group."""

CLOSING = """\
## Real CoinCap and real BigQuery

With no `COINSTREAM_COINCAP_API_KEY` the ingestors poll the bundled
[CoinCap simulator](simulator.md); set the key to poll CoinCap v3 at
`COINSTREAM_COINCAP_BASE_URL`. With no `COINSTREAM_GCP_PROJECT` the warehouse is the local
BigQuery emulator. To use real BigQuery, create it with Terraform and copy its outputs into
`.env` ([GCP](gcp.md)), and sign in with `gcloud auth application-default login` (or point
`GOOGLE_APPLICATION_CREDENTIALS` at a service-account key). Neither switch needs a code change.
"""


def own_fields(group: type[CommonSettings]) -> dict[str, FieldInfo]:
    """The fields ``group`` declares itself, in order, without those of the groups it extends."""
    declared = inspect.get_annotations(group)
    return {name: field for name, field in group.model_fields.items() if name in declared}


def default_text(field: FieldInfo) -> str:
    """A field's default as the table shows it: a value in backticks, ``unset`` or ``empty``."""
    if field.default_factory is not None:
        value: object = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path) and value.is_relative_to(PROJECT_ROOT):
        return f"`./{value.relative_to(PROJECT_ROOT)}`"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def readers(group: type[CommonSettings]) -> str:
    """The processes whose settings class includes ``group``, as a sentence's list."""
    names = [name for name, combined in SERVICE_SETTINGS.items() if issubclass(combined, group)]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def group_section(title: str, group: type[CommonSettings]) -> str:
    summary = " ".join(inspect.cleandoc(group.__doc__ or "").split())
    module = group.__module__.replace(".", "/") + ".py"
    lines = [
        f"## {title}",
        "",
        f"{summary} Read by the {readers(group)} (`{module}`).",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in own_fields(group).items():
        variable = f"`COINSTREAM_{name.upper()}`"
        lines.append(f"| {variable} | {default_text(field)} | {field.description} |")
    if group is CommonSettings:
        lines.append(ENV_FILE_ROW)
    return "\n".join(lines) + "\n"


def settings_page() -> str:
    """The whole of docs/settings.md."""
    sections = [group_section(title, group) for title, group in GROUPS]
    return "\n".join([INTRODUCTION, *sections, CLOSING])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.settings.docs",
        description="Write docs/settings.md from the settings groups.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the page differs"
    )
    arguments = parser.parse_args(argv)
    page = settings_page()
    if arguments.check:
        if SETTINGS_PAGE.read_text() != page:
            print(
                "coinstream: docs/settings.md differs from the settings groups; "
                "run `python -m shared.settings.docs` to rewrite it"
            )
            return 1
        return 0
    SETTINGS_PAGE.write_text(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
