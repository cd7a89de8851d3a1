"""The Looker Studio link: Linking API parameters for the project, dataset and views."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit

import pytest

from services.dashboard.looker import (
    LOOKER_VIEWS,
    LookerUnavailable,
    looker_studio_url,
    url_for_settings,
)
from shared.settings import Settings
from shared.warehouse import view_definitions


@pytest.fixture(autouse=True)
def no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("COINSTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COINSTREAM_ENV_FILE", os.devnull)


def parameters(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://lookerstudio.google.com/reporting/create"
    )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    assert len(pairs) == len(dict(pairs)), "a parameter appears twice"
    return dict(pairs)


def test_each_view_is_a_bigquery_data_source_of_its_own() -> None:
    query = parameters(looker_studio_url("my-project", "coinstream"))
    for index, (view, source_name) in enumerate(LOOKER_VIEWS):
        assert query[f"ds.ds{index}.connector"] == "bigQuery"
        assert query[f"ds.ds{index}.type"] == "TABLE"
        assert query[f"ds.ds{index}.projectId"] == "my-project"
        assert query[f"ds.ds{index}.datasetId"] == "coinstream"
        assert query[f"ds.ds{index}.tableId"] == view
        assert query[f"ds.ds{index}.datasourceName"] == source_name
    assert query["r.reportName"] == "coinstream"
    # No template: a blank report, opened ready to edit.
    assert "c.reportId" not in query
    assert query["c.mode"] == "edit"


def test_a_template_report_is_copied_when_given() -> None:
    query = parameters(looker_studio_url("p", "d", template_report_id="0a1b-2c3d"))
    assert query["c.reportId"] == "0a1b-2c3d"
    assert "c.mode" not in query


def test_names_are_url_encoded() -> None:
    url = looker_studio_url("my-project", "my_dataset", views=[("assets_hourly", "a & b")])
    assert "a+%26+b" in url or "a%20%26%20b" in url
    assert parameters(url)["ds.ds0.datasourceName"] == "a & b"


def test_every_linked_view_is_one_the_worker_creates() -> None:
    created = view_definitions(Settings(_env_file=None))
    assert {view for view, _ in LOOKER_VIEWS} <= set(created)


def test_settings_give_project_dataset_and_template(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSTREAM_GCP_PROJECT", "analytics-prod")
    monkeypatch.setenv("COINSTREAM_BIGQUERY_DATASET", "crypto")
    monkeypatch.setenv("COINSTREAM_LOOKER_TEMPLATE_REPORT_ID", "tmpl-1")
    query = parameters(url_for_settings(Settings()))
    assert query["ds.ds0.projectId"] == "analytics-prod"
    assert query["ds.ds0.datasetId"] == "crypto"
    assert query["c.reportId"] == "tmpl-1"


def test_the_emulator_is_refused_with_what_to_set() -> None:
    """The one-line error `coinstream looker-url` prints from it is checked in test_cli.py."""
    with pytest.raises(LookerUnavailable, match="COINSTREAM_GCP_PROJECT"):
        url_for_settings(Settings())


def test_a_project_passed_in_wins_over_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSTREAM_GCP_PROJECT", "analytics-prod")
    query = parameters(url_for_settings(Settings(), project="p1"))
    assert query["ds.ds3.projectId"] == "p1"
