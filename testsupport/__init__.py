"""Test support: fabricated artifact stores, reference models and feature implementations, tiny tables, test
videos and a small JSON-schema checker.

Imported by ``tests`` and ``benchmarks`` only; no product package imports it (import-linter enforces it).
"""
