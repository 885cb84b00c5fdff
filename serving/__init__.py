"""Serving: a slim Litestar + msgspec + onnxruntime server (no scikit-learn, no pandas)."""
