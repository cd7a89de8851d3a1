# The views the dashboard and Looker Studio read. Each is a SQL file that `make schemas` writes
# from the definitions the stream worker uses on the emulator (shared/warehouse/views.py), with
# the dataset left as ${project}.${dataset} for templatefile to fill in.

locals {
  view_files = fileset("${path.module}/views", "*.sql")
}

resource "google_bigquery_table" "views" {
  for_each = { for file in local.view_files : trimsuffix(file, ".sql") => file }

  dataset_id = google_bigquery_dataset.coinstream.dataset_id
  table_id   = each.key
  # A view holds no data: replacing it loses nothing.
  deletion_protection = false

  view {
    query = templatefile("${path.module}/views/${each.value}", {
      project = var.project_id
      dataset = google_bigquery_dataset.coinstream.dataset_id
    })
    use_legacy_sql = false
  }

  # A view is checked against its tables when it is created.
  depends_on = [google_bigquery_table.tables]
}
