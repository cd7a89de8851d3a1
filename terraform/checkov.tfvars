# Values checkov scans terraform/ with (terraform/.checkov.yaml): the optional VM switched on, so
# that its resources are checked too. Not for applying: project_id names no real project.
project_id     = "coinstream-checks"
enable_vm      = true
repository_url = "https://example.invalid/coinstream.git"
