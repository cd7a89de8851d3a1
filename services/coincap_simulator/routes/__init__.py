"""The simulator's routes: the CoinCap-compatible API, and its own health and control."""
