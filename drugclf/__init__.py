"""Shared core of drug-classifier: the feature contract, artifact metadata and the registry.

Everything here imports only msgspec and the standard library, so serving can use it without
scikit-learn or pandas.
"""
