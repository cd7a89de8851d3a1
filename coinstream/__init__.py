"""The ``coinstream`` command: operate the pipeline from a terminal (docs/cli.md).

A client of the control service and of the warehouse settings; it starts no service itself.
"""
