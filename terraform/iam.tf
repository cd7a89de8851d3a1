# One service account per role, each granted only what that role does; no key is created here
# (docs/gcp.md says how credentials reach the containers).
#
#   asset and exchange ingestors: no GCP access at all (they talk to CoinCap and Kafka).
#   stream worker: writes the dataset (loads into per-batch staging tables it creates and
#     deletes, MERGEs into the tables), runs jobs, keeps its checkpoint in the bucket.
#   dashboard, control service: read the dataset, run (query) jobs.
#   Looker Studio viewers: read the dataset, run jobs, with their own Google accounts.
#
# Data roles are granted on the dataset or the bucket, never on the project. Running jobs
# (roles/bigquery.jobUser) can only be granted on a project; it gives no access to data.

locals {
  service_accounts = {
    stream-worker = "coinstream stream worker: writes BigQuery, keeps its checkpoint in Cloud Storage"
    dashboard     = "coinstream dashboard: reads BigQuery"
    control       = "coinstream control service: reads BigQuery (table freshness)"
  }
  dataset_readers = {
    dashboard = google_service_account.coinstream["dashboard"].member
    control   = google_service_account.coinstream["control"].member
  }
}

resource "google_service_account" "coinstream" {
  for_each = local.service_accounts

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "${var.name_prefix} ${each.key}"
  description  = each.value

  depends_on = [google_project_service.required]
}

# --- BigQuery ------------------------------------------------------------------------------------

resource "google_bigquery_dataset_iam_member" "stream_worker_writes" {
  dataset_id = google_bigquery_dataset.coinstream.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.coinstream["stream-worker"].member
}

resource "google_bigquery_dataset_iam_member" "readers" {
  for_each = local.dataset_readers

  dataset_id = google_bigquery_dataset.coinstream.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = each.value
}

resource "google_bigquery_dataset_iam_member" "looker_studio_viewers" {
  for_each = toset(var.looker_studio_viewers)

  dataset_id = google_bigquery_dataset.coinstream.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = each.value
}

resource "google_project_iam_member" "job_users" {
  for_each = merge(
    { for name, account in google_service_account.coinstream : name => account.member },
    { for member in var.looker_studio_viewers : member => member },
  )

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = each.value
}

# --- Cloud Storage -------------------------------------------------------------------------------

# Create, read, overwrite and delete the checkpoint's objects; nothing on the bucket itself.
resource "google_storage_bucket_iam_member" "stream_worker_checkpoint_objects" {
  bucket = google_storage_bucket.checkpoints.name
  role   = "roles/storage.objectUser"
  member = google_service_account.coinstream["stream-worker"].member
}

# The Cloud Storage connector reads the bucket's metadata (storage.buckets.get) when it
# resolves the checkpoint folder's parents; this role adds only that and object listing.
resource "google_storage_bucket_iam_member" "stream_worker_checkpoint_bucket" {
  bucket = google_storage_bucket.checkpoints.name
  role   = "roles/storage.legacyBucketReader"
  member = google_service_account.coinstream["stream-worker"].member
}

# --- Secret Manager (only with the VM) -----------------------------------------------------------

# The VM's startup script reads the CoinCap API key from here; the worker's account (the VM's)
# may read this one secret and nothing else.
resource "google_secret_manager_secret_iam_member" "vm_reads_coincap_key" {
  count = var.enable_vm ? 1 : 0

  secret_id = google_secret_manager_secret.coincap_api_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.coinstream["stream-worker"].member
}
