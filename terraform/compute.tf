# Optional (enable_vm): one Compute Engine VM that runs the Compose stack in live mode, with the
# stream worker's service account attached, so no key file exists anywhere. Its startup script
# (startup.sh.tftpl) installs Docker, checks out repository_url at repository_ref, writes .env
# from this configuration and starts the stack; docs/gcp.md#the-optional-vm says more.
#
# The VM has no public address: it reaches CoinCap, the package registries and Google's APIs
# through Cloud NAT and Private Google Access, and people reach it (ssh, and the dashboard through
# an ssh tunnel) through Identity-Aware Proxy only.

locals {
  vm_count = var.enable_vm ? 1 : 0
  # Google's published source range for IAP TCP forwarding.
  iap_source_range = "35.235.240.0/20"
}

resource "google_secret_manager_secret" "coincap_api_key" {
  count = local.vm_count

  secret_id = "${var.name_prefix}-coincap-api-key"
  replication {
    auto {}
  }

  depends_on = [google_project_service.required]
}

resource "google_compute_network" "coinstream" {
  count = local.vm_count

  name                    = "${var.name_prefix}-network"
  auto_create_subnetworks = false

  depends_on = [google_project_service.required]
}

resource "google_compute_subnetwork" "coinstream" {
  count = local.vm_count

  name                     = "${var.name_prefix}-subnet"
  network                  = google_compute_network.coinstream[0].id
  region                   = var.region
  ip_cidr_range            = "10.80.0.0/24"
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "coinstream" {
  count = local.vm_count

  name    = "${var.name_prefix}-router"
  network = google_compute_network.coinstream[0].id
  region  = var.region
}

resource "google_compute_router_nat" "coinstream" {
  count = local.vm_count

  name                               = "${var.name_prefix}-nat"
  router                             = google_compute_router.coinstream[0].name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

resource "google_compute_firewall" "iap_ssh" {
  count = local.vm_count

  name          = "${var.name_prefix}-allow-iap-ssh"
  network       = google_compute_network.coinstream[0].id
  direction     = "INGRESS"
  source_ranges = [local.iap_source_range]
  target_tags   = ["${var.name_prefix}-vm"]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

resource "google_compute_instance" "coinstream" {
  count = local.vm_count

  name         = "${var.name_prefix}-vm"
  machine_type = var.vm_machine_type
  zone         = var.zone
  tags         = ["${var.name_prefix}-vm"]

  boot_disk {
    initialize_params {
      # Debian 13 packages Docker Compose v2 (docker-compose) and buildx.
      image = "debian-cloud/debian-13"
      size  = 30
      type  = "pd-balanced"
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.coinstream[0].id
    # No access_config: no public address.
  }

  service_account {
    email = google_service_account.coinstream["stream-worker"].email
    # What the account may do is set by its roles (iam.tf); the scope only lets them apply.
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    block-project-ssh-keys = "TRUE"
    enable-oslogin         = "TRUE"
    startup-script = templatefile("${path.module}/startup.sh.tftpl", {
      repository_url         = var.repository_url
      repository_ref         = var.repository_ref
      coincap_api_key_secret = google_secret_manager_secret.coincap_api_key[0].secret_id
      settings               = local.coinstream_settings
      project_id             = var.project_id
    })
  }

  lifecycle {
    precondition {
      condition     = var.repository_url != null
      error_message = "enable_vm needs repository_url: the Git URL the VM checks coinstream out from."
    }
  }

  depends_on = [
    google_compute_router_nat.coinstream,
    google_project_iam_member.job_users,
    google_bigquery_dataset_iam_member.stream_worker_writes,
    google_storage_bucket_iam_member.stream_worker_checkpoint_objects,
    google_storage_bucket_iam_member.stream_worker_checkpoint_bucket,
    google_bigquery_table.views,
  ]
}
