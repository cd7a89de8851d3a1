"""The exchange ingestor: CoinCap /exchanges into Kafka topic ``coincap.exchanges.v1``."""
