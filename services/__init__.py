"""coinstream's services: ingestors, the stream worker and the control service."""
