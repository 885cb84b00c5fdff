"""Exact Shapley explanations: ``POST /explain`` and ``GET /model/explanations``."""
