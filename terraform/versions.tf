# Terraform and provider versions. `terraform init` writes .terraform.lock.hcl with the exact
# provider build it chose; commit it so that every apply uses the same one.
terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.30"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource carries these, on top of its own.
  default_labels = var.labels
}
