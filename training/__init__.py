"""Offline side of drug-classifier: load, explore, train, evaluate, optimize and export.

Needs the ``train`` extra (scikit-learn, imbalanced-learn, pandas, skl2onnx). Serving never
imports this package.
"""
