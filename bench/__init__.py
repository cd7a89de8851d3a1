"""Benchmarks: ``make bench`` runs each against the real local stack and prints its figures."""
