"""The web dashboard: charts and tables of assets and exchanges, read from the warehouse views.

A service of its own (``python -m services.dashboard``) so that a slow chart query never delays
the control service's health checks, and the page can be scaled or left out on its own.
"""
