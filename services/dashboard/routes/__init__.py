"""The dashboard's routes, one module per resource; ``parameters`` holds what they share."""
