# Every input of the coinstream GCP deployment. Only project_id has no default; docs/gcp.md
# walks through the others.

variable "project_id" {
  type        = string
  description = "The GCP project coinstream runs in (its id, not its name or number)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id: 6 to 30 lower-case letters, digits or hyphens, starting with a letter (e.g. my-coinstream-123)."
  }
}

variable "region" {
  type        = string
  description = "Region of the checkpoint bucket's default location and of the optional VM."
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must be a Compute Engine region such as us-central1 or europe-west1."
  }
}

variable "zone" {
  type        = string
  description = "Zone of the optional VM; must be in region."
  default     = "us-central1-a"

  validation {
    condition     = startswith(var.zone, "${var.region}-")
    error_message = "zone must be a zone of region (e.g. us-central1-a for us-central1)."
  }
}

variable "bigquery_location" {
  type        = string
  description = "Location of the BigQuery dataset: a multi-region (US, EU) or a region (us-central1). It cannot change once the dataset exists."
  default     = "US"
}

variable "dataset_id" {
  type        = string
  description = "Name of the BigQuery dataset; COINSTREAM_BIGQUERY_DATASET in the outputs."
  default     = "coinstream"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.dataset_id))
    error_message = "dataset_id may hold only letters, digits and underscores."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels put on every resource (cost reports group by them)."
  default     = { app = "coinstream" }

  validation {
    condition = alltrue([
      for key, value in var.labels :
      can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))
    ])
    error_message = "label keys must start with a lower-case letter; keys and values may hold only lower-case letters, digits, underscores and hyphens (at most 63)."
  }
}

variable "partition_expiration_days" {
  type        = number
  description = "Days a day partition of the tables is kept before BigQuery deletes it; null keeps every day. Also the dataset's default for tables created later."
  default     = null

  validation {
    condition     = var.partition_expiration_days == null || try(var.partition_expiration_days >= 1 && floor(var.partition_expiration_days) == var.partition_expiration_days, false)
    error_message = "partition_expiration_days must be a whole number of days, 1 or more, or null."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the tables (and their data) in `terraform destroy` or a replacing apply. Set false, apply, then destroy, to really delete them."
  default     = true
}

variable "name_prefix" {
  type        = string
  description = "Start of the service account ids and of the other resource names."
  default     = "coinstream"

  validation {
    # The longest service account id is "<prefix>-stream-worker", and ids stop at 30 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{0,14}$", var.name_prefix))
    error_message = "name_prefix must be 1 to 15 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "looker_studio_viewers" {
  type        = list(string)
  description = "Who may read the coinstream views from Looker Studio with their own credentials: IAM members such as user:ana@example.com or group:analysts@example.com."
  default     = []

  validation {
    condition     = alltrue([for member in var.looker_studio_viewers : can(regex("^(user|group|domain|serviceAccount):[^\\s]+$", member))])
    error_message = "each Looker Studio viewer must be an IAM member: user:, group:, domain: or serviceAccount: followed by the address."
  }
}

variable "checkpoint_bucket_name" {
  type        = string
  description = "Name of the bucket for the stream worker's Spark checkpoint; null names it <project_id>-coinstream-checkpoints. Bucket names are global."
  default     = null

  validation {
    condition     = var.checkpoint_bucket_name == null || can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.checkpoint_bucket_name))
    error_message = "checkpoint_bucket_name must be 3 to 63 lower-case letters, digits, dots, underscores or hyphens, starting and ending with a letter or digit."
  }
}

variable "checkpoint_bucket_location" {
  type        = string
  description = "Location of the checkpoint bucket; null puts it in region, next to the worker."
  default     = null
}

variable "checkpoint_noncurrent_days" {
  type        = number
  description = "Days an overwritten or deleted checkpoint file is kept (as a noncurrent version) before it is deleted: the window in which a damaged checkpoint can be restored."
  default     = 7

  validation {
    condition     = var.checkpoint_noncurrent_days >= 1
    error_message = "checkpoint_noncurrent_days must be 1 or more."
  }
}

variable "stream_trigger_seconds" {
  type        = number
  description = "Seconds between the stream worker's micro-batches on BigQuery; COINSTREAM_STREAM_TRIGGER_SECONDS in the outputs. A batch with no rows writes nothing, so a trigger at or below the ingestors' poll interval costs no more than a longer one (docs/gcp.md#the-trigger-from-the-quotas)."
  default     = 10

  validation {
    condition     = var.stream_trigger_seconds >= 1
    error_message = "stream_trigger_seconds must be 1 or more."
  }
}

variable "stream_sink" {
  type        = string
  description = "How the stream worker writes to BigQuery; COINSTREAM_STREAM_SINK in the outputs. storage-write appends through the Storage Write API and reads nothing per batch; merge runs a MERGE per table and batch that scans the dedup horizon's partitions (docs/gcp.md#the-trigger-from-the-quotas)."
  default     = "storage-write"

  validation {
    condition     = contains(["merge", "storage-write"], var.stream_sink)
    error_message = "stream_sink must be merge or storage-write."
  }
}

variable "enable_vm" {
  type        = bool
  description = "Create a Compute Engine VM that runs the Compose stack in live mode, with the stream worker's service account attached (compute.tf)."
  default     = false
}

variable "vm_machine_type" {
  type        = string
  description = "Machine type of the optional VM; Kafka, Spark and the services fit in 8 GB."
  default     = "e2-standard-2"
}

variable "repository_url" {
  type        = string
  description = "Git URL the optional VM clones coinstream from (https); required when enable_vm is true."
  default     = null

  validation {
    condition     = var.repository_url == null || can(regex("^https://", var.repository_url))
    error_message = "repository_url must be an https:// Git URL."
  }
}

variable "repository_ref" {
  type        = string
  description = "Branch or tag of repository_url the optional VM runs."
  default     = "main"
}
