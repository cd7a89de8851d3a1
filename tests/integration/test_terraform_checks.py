"""terraform/ through the tools that run here without a provider: fmt, checkov, and Terraform's
own functions (``terraform console``) on the files the configuration renders.

``terraform validate`` and ``plan`` need the Google provider, which cannot be downloaded here;
docs/gcp.md tells a user to run them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services.dashboard.looker import looker_studio_url
from shared.settings import PROJECT_ROOT, Settings
from shared.warehouse import view_definitions
from tests.harness.terraform import locals_

TERRAFORM_DIR = PROJECT_ROOT / "terraform"
CHECKOV = PROJECT_ROOT / ".cache" / "checkov" / "bin" / "checkov"


def terraform() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.fail("terraform is not on PATH; install Terraform 1.9 or newer and retry")
    return found


def console(expression: str, workdir: Path) -> object:
    """The value of one Terraform expression, as JSON, evaluated with no configuration."""
    result = subprocess.run(
        [terraform(), "console"],
        input=f"jsonencode({expression})\n",
        capture_output=True,
        text=True,
        cwd=workdir,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # The console prints the JSON text as an HCL string literal.
    return json.loads(json.loads(result.stdout))


def hcl_string(value: str) -> str:
    """``value`` as an HCL string literal (JSON's escapes, and ${ and %{ kept literal)."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def test_terraform_files_are_formatted() -> None:
    result = subprocess.run(
        [terraform(), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}"


def test_checkov_finds_nothing_that_is_not_justified() -> None:
    """Each skipped check is justified in terraform/.checkov.yaml."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}; run `make setup`")
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(TERRAFORM_DIR / ".checkov.yaml")],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout


def test_the_view_files_render_to_the_views_the_worker_creates(tmp_path: Path) -> None:
    """templatefile, as views.tf calls it, gives the SQL the worker runs on the emulator."""
    settings = Settings(_env_file=None, gcp_project="my-project", bigquery_dataset="market")
    for name, query in view_definitions(settings).items():
        path = TERRAFORM_DIR / "views" / f"{name}.sql"
        rendered = console(
            f'templatefile("{path}", {{ project = "my-project", dataset = "market" }})', tmp_path
        )
        assert isinstance(rendered, str)
        sql_lines = [line.strip() for line in rendered.splitlines()[1:]]
        assert sql_lines == [line.strip() for line in query.strip().splitlines()]


def test_the_startup_script_renders_to_valid_bash(tmp_path: Path) -> None:
    settings = {"COINSTREAM_GCP_PROJECT": "my-project", "COINSTREAM_BIGQUERY_DATASET": "market"}
    rendered = console(
        f'templatefile("{TERRAFORM_DIR / "startup.sh.tftpl"}", {{'
        'repository_url = "https://example.invalid/coinstream.git", repository_ref = "main", '
        'coincap_api_key_secret = "coinstream-coincap-api-key", project_id = "my-project", '
        f"settings = {json.dumps(settings)} }})",
        tmp_path,
    )
    assert isinstance(rendered, str)
    script = tmp_path / "startup.sh"
    script.write_text(rendered)
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    assert 'echo "COINSTREAM_GCP_PROJECT=my-project"' in rendered
    assert "docker compose -f compose.yaml up" in rendered


def test_the_looker_studio_output_is_the_link_make_looker_url_prints(tmp_path: Path) -> None:
    """outputs.tf's parameters, evaluated by Terraform, against services/dashboard/looker.py."""
    expression = str(locals_()["looker_parameters"]).removeprefix("${").removesuffix("}")
    views = (
        "["
        + ", ".join(
            f"{{ view = {hcl_string(source['view'])}, name = {hcl_string(source['name'])} }}"
            for source in locals_()["looker_views"]
        )
        + "]"
    )
    expression = (
        expression.replace("local.looker_views", views)
        .replace("var.project_id", '"my-project"')
        .replace("google_bigquery_dataset.coinstream.dataset_id", '"market"')
    )
    parameters = console(expression, tmp_path)
    assert isinstance(parameters, list)
    url = "https://lookerstudio.google.com/reporting/create?" + "&".join(parameters)
    assert url == looker_studio_url("my-project", "market")
