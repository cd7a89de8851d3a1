"""terraform/*.tf, parsed: the tables, views and grants are the code's, and the inputs are sound.

``terraform validate`` and ``plan`` need the Google provider, which cannot be had here; these
tests hold what the files say to the code's one schema definition and to the rules of the
deployment (one owner of the schema, least privilege, no key files) without it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.dashboard.looker import LINKING_API_URL, LOOKER_VIEWS
from shared.schemas import TABLES, TERRAFORM_SCHEMA_DIR, json_schema_path
from shared.settings import Settings
from shared.warehouse.view_files import TERRAFORM_VIEW_DIR, view_names
from tests.harness.terraform import TERRAFORM_FILES, blocks, locals_, resources, variables

PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PROJECT_WIDE_ALLOWED_ROLES = {"roles/bigquery.jobUser"}
"""Roles that exist only at project level and give no access to data."""


def test_the_configuration_is_split_by_concern() -> None:
    names = {path.stem for path in TERRAFORM_FILES}
    assert {"versions", "variables", "outputs", "bigquery", "views", "iam", "storage"} <= names
    assert "compute" in names


def test_the_provider_version_is_pinned() -> None:
    (terraform,) = blocks("terraform")
    google = terraform["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+", google["version"]), google["version"]
    assert terraform["required_version"].startswith(">= ")


@pytest.mark.parametrize("schema", TABLES, ids=lambda schema: schema.table)
def test_each_table_is_the_codes_table(schema: Any) -> None:
    table = locals_()["tables"][schema.table]
    assert table["clustering"] == schema.clustering_columns
    assert table["partition_column"] == schema.partition_column
    assert table["description"] == schema.description
    assert json_schema_path(TERRAFORM_SCHEMA_DIR, schema).is_file()


def test_the_tables_resource_reads_the_generated_schemas() -> None:
    assert set(locals_()["tables"]) == {schema.table for schema in TABLES}
    tables = resources("google_bigquery_table")["tables"]
    assert tables["for_each"] == "${local.tables}"
    assert tables["table_id"] == "${each.key}"
    assert tables["schema"] == '${file("${path.module}/schemas/${each.key}.json")}'
    assert tables["clustering"] == "${each.value.clustering}"
    (partitioning,) = tables["time_partitioning"]
    assert partitioning["type"] == "DAY"
    assert partitioning["field"] == "${each.value.partition_column}"


def test_the_tables_are_protected_from_deletion_by_default() -> None:
    tables = resources("google_bigquery_table")["tables"]
    assert tables["deletion_protection"] == "${var.deletion_protection}"
    assert variables()["deletion_protection"]["default"] is True


def test_the_views_are_the_generated_view_files() -> None:
    views = resources("google_bigquery_table")["views"]
    assert locals_()["view_files"] == '${fileset("${path.module}/views", "*.sql")}'
    assert 'trimsuffix(file, ".sql")' in views["for_each"]
    (view,) = views["view"]
    assert view["use_legacy_sql"] is False
    assert view["query"].startswith('${templatefile("${path.module}/views/${each.value}"')
    files = sorted(path.stem for path in TERRAFORM_VIEW_DIR.glob("*.sql"))
    assert files == sorted(view_names())


def test_every_variable_has_a_type_and_a_description() -> None:
    for name, variable in variables().items():
        assert variable.get("type"), f"variable {name} has no type"
        assert variable.get("description"), f"variable {name} has no description"


def test_the_project_id_is_validated_and_has_no_default() -> None:
    project = variables()["project_id"]
    assert "default" not in project
    assert project["validation"]


def test_no_literal_project_id() -> None:
    """Every ``project`` argument is the variable; no file names a project of its own."""
    for path in TERRAFORM_FILES:
        for match in re.finditer(r"^\s*project\s*=\s*(.+)$", path.read_text(), re.MULTILINE):
            assert match.group(1).strip() == "var.project_id", f"{path.name}: {match.group(0)}"
        assert "projects/" not in path.read_text(), f"{path.name} names a project path"


def iam_grants() -> list[tuple[str, str, dict[str, Any]]]:
    """(resource type, name, body) of every IAM grant."""
    return [
        (resource_type, name, body)
        for block in blocks("resource")
        for resource_type, named in block.items()
        if "_iam_" in resource_type
        for name, body in named.items()
    ]


def test_no_primitive_role_is_granted() -> None:
    for path in TERRAFORM_FILES:
        for role in PRIMITIVE_ROLES:
            assert f'"{role}"' not in path.read_text(), f"{path.name} grants {role}"
    for _, name, body in iam_grants():
        assert body["role"] not in PRIMITIVE_ROLES, name


def test_only_job_running_is_granted_on_the_project() -> None:
    """Data roles are granted on the dataset or the bucket, where a narrower grant serves."""
    project_grants = resources("google_project_iam_member")
    assert project_grants, "the service accounts need to run BigQuery jobs"
    for name, grant in project_grants.items():
        assert grant["role"] in PROJECT_WIDE_ALLOWED_ROLES, name
    assert not resources("google_project_iam_binding")
    assert not resources("google_project_iam_policy")


def test_each_role_gets_what_it_needs_and_no_more() -> None:
    dataset_grants = resources("google_bigquery_dataset_iam_member")
    assert dataset_grants["stream_worker_writes"]["role"] == "roles/bigquery.dataEditor"
    assert "stream-worker" in dataset_grants["stream_worker_writes"]["member"]
    assert dataset_grants["readers"]["role"] == "roles/bigquery.dataViewer"
    assert set(locals_()["dataset_readers"]) == {"dashboard", "control"}
    assert dataset_grants["looker_studio_viewers"]["role"] == "roles/bigquery.dataViewer"
    assert (
        dataset_grants["looker_studio_viewers"]["for_each"] == "${toset(var.looker_studio_viewers)}"
    )
    bucket_grants = resources("google_storage_bucket_iam_member")
    assert {grant["role"] for grant in bucket_grants.values()} == {
        "roles/storage.objectUser",
        "roles/storage.legacyBucketReader",
    }
    assert all("stream-worker" in grant["member"] for grant in bucket_grants.values())
    # The ingestors need no GCP access: they have no account at all.
    assert set(locals_()["service_accounts"]) == {"stream-worker", "dashboard", "control"}


def test_terraform_creates_no_key_files() -> None:
    assert not resources("google_service_account_key")


def test_the_checkpoint_bucket_is_private_and_cleans_up_after_itself() -> None:
    bucket = resources("google_storage_bucket")["checkpoints"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True
    actions = {rule["action"][0]["type"] for rule in bucket["lifecycle_rule"]}
    assert actions == {"Delete", "AbortIncompleteMultipartUpload"}
    # No rule deletes live objects by age: a checkpoint's first files live as long as it does.
    for rule in bucket["lifecycle_rule"]:
        if rule["action"][0]["type"] == "Delete":
            assert "age" not in rule["condition"][0]


def test_the_vm_is_off_by_default_and_runs_as_the_stream_worker() -> None:
    assert variables()["enable_vm"]["default"] is False
    (vm,) = resources("google_compute_instance").values()
    assert vm["count"] == "${local.vm_count}"
    assert vm["service_account"][0]["email"] == (
        '${google_service_account.coinstream["stream-worker"].email}'
    )
    assert "access_config" not in vm["network_interface"][0], "the VM has no public address"


def test_the_outputs_are_settings_a_user_pastes_into_env() -> None:
    settings = locals_()["coinstream_settings"]
    known = {f"COINSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert set(settings) <= known, set(settings) - known
    assert {
        "COINSTREAM_GCP_PROJECT",
        "COINSTREAM_BIGQUERY_DATASET",
        "COINSTREAM_STREAM_CHECKPOINT_LOCATION",
    } <= set(settings)
    assert settings["COINSTREAM_STREAM_CHECKPOINT_LOCATION"].startswith("gs://")
    outputs = {name for block in blocks("output") for name in block}
    assert {"coinstream_settings", "env_file", "service_accounts", "looker_studio_url"} <= outputs


def test_the_looker_studio_link_opens_the_same_views_as_make_looker_url() -> None:
    views = [(source["view"], source["name"]) for source in locals_()["looker_views"]]
    assert views == list(LOOKER_VIEWS)
    (url,) = [
        block["looker_studio_url"] for block in blocks("output") if "looker_studio_url" in block
    ]
    assert url["value"].startswith(f"{LINKING_API_URL}?")
