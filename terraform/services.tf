# The Google APIs coinstream uses. Left enabled on destroy: other things in the project may
# use them too.

locals {
  required_services = concat(
    [
      "bigquery.googleapis.com",
      "storage.googleapis.com",
      "iam.googleapis.com",
    ],
    var.enable_vm ? ["compute.googleapis.com", "secretmanager.googleapis.com"] : [],
  )
}

resource "google_project_service" "required" {
  for_each = toset(local.required_services)

  service            = each.value
  disable_on_destroy = false
}
