"""The CoinCap simulator: a local stand-in for CoinCap v3 with a random market and fault knobs.

It lets the pipeline run and be tested without an API key or network, in CoinCap's real wire
format, and it can misbehave on demand the ways CoinCap does, so retries and dead letters can be
watched working. All data is simulated: real asset and exchange names, made-up numbers.

``python -m services.coincap_simulator`` runs it (``cli``); ``app`` assembles the FastAPI app
from ``market`` (the random walk over ``universe.json``), ``faults`` (the fault knobs) and
``routes`` (``coincap``: the /v3 and /v2 API; ``simulator``: /healthz and /_simulator).
What tests and benchmarks use is re-exported here.
"""

from services.coincap_simulator.app import create_app
from services.coincap_simulator.cli import main
from services.coincap_simulator.faults import Fault
from services.coincap_simulator.market import load_universe

__all__ = ["Fault", "create_app", "load_universe", "main"]
