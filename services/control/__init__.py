"""The control service: health, component state and commands, lag and freshness, over HTTP."""
