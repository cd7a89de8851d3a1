"""The asset ingestor: CoinCap /assets into Kafka topic ``coincap.assets.v1``."""
