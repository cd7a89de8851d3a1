# The warehouse: one dataset, and the four tables the stream worker writes. Their schemas are
# the JSON files `make schemas` generates from shared/schemas/tables.py, and tests/unit/test_terraform.py
# holds the partitioning and clustering below to the same definitions.

locals {
  partition_expiration_ms = var.partition_expiration_days == null ? null : var.partition_expiration_days * 24 * 60 * 60 * 1000

  # By table: what it clusters on (its key; id and interval for history), the column it is
  # partitioned on by day, and its description, as shared/schemas/tables.py defines them.
  tables = {
    assets = {
      clustering       = ["id"]
      partition_column = "processing_timestamp"
      description      = "CoinCap /assets snapshots, one row per asset per poll."
    }
    exchanges = {
      clustering       = ["exchange_id"]
      partition_column = "processing_timestamp"
      description      = "CoinCap /exchanges snapshots, one row per exchange per poll."
    }
    asset_history = {
      clustering       = ["id", "interval"]
      partition_column = "time"
      description      = "CoinCap /assets/{id}/history points from `coinstream backfill`, one row per asset, interval and point in time."
    }
    quarantine = {
      clustering       = ["topic"]
      partition_column = "processing_timestamp"
      description      = "Kafka messages the stream worker could not turn into rows, with the reason."
    }
  }
}

resource "google_bigquery_dataset" "coinstream" {
  dataset_id    = var.dataset_id
  friendly_name = "coinstream"
  description   = "coinstream: CoinCap assets and exchanges streamed through Kafka and Spark, and the views dashboards read."
  location      = var.bigquery_location

  default_partition_expiration_ms = local.partition_expiration_ms
  # `terraform destroy` fails while tables hold data, unless they were removed first.
  delete_contents_on_destroy = false

  depends_on = [google_project_service.required]
}

resource "google_bigquery_table" "tables" {
  for_each = local.tables

  dataset_id          = google_bigquery_dataset.coinstream.dataset_id
  table_id            = each.key
  description         = each.value.description
  schema              = file("${path.module}/schemas/${each.key}.json")
  clustering          = each.value.clustering
  deletion_protection = var.deletion_protection

  time_partitioning {
    type          = "DAY"
    field         = each.value.partition_column
    expiration_ms = local.partition_expiration_ms
  }
}
