"""``python -m services.coincap_simulator``: the CoinCap-compatible simulator, until Ctrl-C."""

from services.coincap_simulator.cli import main

if __name__ == "__main__":
    main()
