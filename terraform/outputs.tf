# What a user pastes into .env (`terraform output -raw env_file >> .env`), and what the docs
# refer to. tests/unit/test_terraform.py checks that every key of coinstream_settings is a
# setting of shared/settings/.

locals {
  coinstream_settings = {
    COINSTREAM_GCP_PROJECT                = var.project_id
    COINSTREAM_BIGQUERY_DATASET           = google_bigquery_dataset.coinstream.dataset_id
    COINSTREAM_BIGQUERY_LOCATION          = google_bigquery_dataset.coinstream.location
    COINSTREAM_STREAM_CHECKPOINT_LOCATION = "gs://${google_storage_bucket.checkpoints.name}/stream-worker"
    COINSTREAM_STREAM_TRIGGER_SECONDS     = tostring(var.stream_trigger_seconds)
    COINSTREAM_STREAM_SINK                = var.stream_sink
    COINSTREAM_WAREHOUSE_SCHEMA_OWNER     = "terraform"
  }

  # The views a Looker Studio report starts with and the data source name of each, as
  # services/dashboard/looker.py names them (`make looker-url` builds the same link).
  looker_views = [
    { view = "assets_hourly", name = "coinstream assets, hourly" },
    { view = "exchanges_hourly", name = "coinstream exchanges, hourly" },
    { view = "assets_latest", name = "coinstream assets, latest" },
    { view = "exchanges_latest", name = "coinstream exchanges, latest" },
  ]
  looker_parameters = concat(
    ["c.mode=edit", "r.reportName=coinstream"],
    flatten([
      for index, source in local.looker_views : [
        "ds.ds${index}.connector=bigQuery",
        "ds.ds${index}.type=TABLE",
        "ds.ds${index}.projectId=${urlencode(var.project_id)}",
        "ds.ds${index}.datasetId=${urlencode(google_bigquery_dataset.coinstream.dataset_id)}",
        "ds.ds${index}.tableId=${urlencode(source.view)}",
        "ds.ds${index}.datasourceName=${urlencode(source.name)}",
      ]
    ]),
  )
}

output "coinstream_settings" {
  description = "COINSTREAM_* settings for the pipeline's .env, by name."
  value       = local.coinstream_settings
}

output "env_file" {
  description = "The same settings as .env lines: `terraform output -raw env_file >> .env`."
  value       = join("", [for name, value in local.coinstream_settings : "${name}=${value}\n"])
}

output "service_accounts" {
  description = "Email of each service account, by role (stream-worker, dashboard, control)."
  value       = { for name, account in google_service_account.coinstream : name => account.email }
}

output "checkpoint_bucket" {
  description = "The bucket that holds the stream worker's Spark checkpoint."
  value       = google_storage_bucket.checkpoints.name
}

output "looker_studio_url" {
  description = "Opens a new Looker Studio report with the coinstream views as its data sources."
  value       = "https://lookerstudio.google.com/reporting/create?${join("&", local.looker_parameters)}"
}

output "vm" {
  description = "The optional VM's name and zone, and the command that tunnels its dashboard to http://127.0.0.1:8200/ (null without enable_vm)."
  value = var.enable_vm ? {
    name   = google_compute_instance.coinstream[0].name
    zone   = google_compute_instance.coinstream[0].zone
    tunnel = "gcloud compute ssh ${google_compute_instance.coinstream[0].name} --zone ${google_compute_instance.coinstream[0].zone} --project ${var.project_id} --tunnel-through-iap -- -N -L 8200:127.0.0.1:8200 -L 8100:127.0.0.1:8100"
  } : null
}
