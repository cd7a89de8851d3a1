# The bucket for the stream worker's Spark checkpoint (COINSTREAM_STREAM_CHECKPOINT_LOCATION).
#
# The checkpoint must not lose a file while the query lives: its first files (metadata,
# sources/0/0) are written once and read at every restart. So no rule deletes live objects by
# age; Spark itself deletes the files of old batches. Versioning keeps what Spark overwrites or
# deletes for checkpoint_noncurrent_days, the window in which a damaged checkpoint can be
# restored, and the lifecycle rules delete those versions and abandoned uploads afterwards.

locals {
  checkpoint_bucket_name = coalesce(var.checkpoint_bucket_name, "${var.project_id}-coinstream-checkpoints")
}

resource "google_storage_bucket" "checkpoints" {
  name          = local.checkpoint_bucket_name
  location      = upper(coalesce(var.checkpoint_bucket_location, var.region))
  storage_class = "STANDARD"
  # `terraform destroy` fails while the bucket holds a checkpoint.
  force_destroy = false

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  # Versioning is the recovery window; soft delete would keep every deleted batch file (Spark
  # deletes a few a minute) for another week on top of it.
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.checkpoint_noncurrent_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.required]
}
