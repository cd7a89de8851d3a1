"""The ``coinstream`` subcommands, one module per job; ``coinstream.cli`` assembles them."""
