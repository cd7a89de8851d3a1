"""The views as SQL files for Terraform (``terraform/views/*.sql``), written by ``make schemas``.

On GCP Terraform creates the views (terraform/views.tf) from these files, so they must say what
``views.view_queries`` says; a test fails when they drift. The dataset is left as
``${project}.${dataset}``, which Terraform's ``templatefile`` fills in.

    python -m shared.warehouse.view_files
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from shared.settings import PROJECT_ROOT
from shared.warehouse.views import view_queries

TERRAFORM_VIEW_DIR = PROJECT_ROOT / "terraform" / "views"

TERRAFORM_DATASET_REFERENCE = "${project}.${dataset}"
"""The dataset as the view files name it: Terraform's ``templatefile`` fills both in."""


def view_names() -> list[str]:
    return list(view_queries(TERRAFORM_DATASET_REFERENCE))


def view_file_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.sql"


def view_file_text(name: str) -> str:
    """A view's SQL as Terraform reads it, under a line saying where it comes from."""
    query = textwrap.dedent(view_queries(TERRAFORM_DATASET_REFERENCE)[name]).strip()
    return (
        f"-- The {name} view; generated from shared/warehouse/views.py by `make schemas`.\n"
        f"{query}\n"
    )


def write_view_files(directory: Path = TERRAFORM_VIEW_DIR) -> list[Path]:
    """Write one SQL file per view, and remove files of views that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in view_names():
        path = view_file_path(directory, name)
        path.write_text(view_file_text(name))
        written.append(path)
    for stale in set(directory.glob("*.sql")) - set(written):
        stale.unlink()
    return written


if __name__ == "__main__":
    for written_path in write_view_files():
        print(f"wrote {written_path}")
