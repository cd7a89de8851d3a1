"""coinstream's services, one package each: the ingestor (run as asset-ingestor and
exchange-ingestor), the stream worker, the control service, the dashboard, and the CoinCap
simulator."""
