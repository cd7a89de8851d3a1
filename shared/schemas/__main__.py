"""``python -m shared.schemas`` (``make schemas``): rewrite the JSON schema files Terraform
reads from the table definitions."""

from shared.schemas.json_files import TERRAFORM_SCHEMA_DIR, write_json_schemas

for written_path in write_json_schemas(TERRAFORM_SCHEMA_DIR):
    print(f"wrote {written_path}")
