"""coinstream's shared library: settings, record schemas, warehouse access, Kafka helpers."""
