"""The one poll -> produce loop, shared by the asset and the exchange ingestor."""
