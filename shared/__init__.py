"""coinstream's shared library: only what two or more services import.

Settings, the record schemas and the Kafka message envelope (each defined once), the CoinCap
client, Kafka and warehouse access, the control topic's desired states, logging and the
``/metrics`` endpoint.
"""
