"""Load tests (Locust) and benchmarks (``python -m loadtests.bench``) of the prediction server.

Nothing here is imported by serving or training: it only drives the server from outside, with
patients built from the one feature contract in :mod:`drugclf.contract`.
"""
