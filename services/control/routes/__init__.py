"""The control service's routes, one module per resource."""
