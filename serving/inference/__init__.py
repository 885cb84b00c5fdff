"""The data plane: the model, hot reload, micro-batching, the codec and the prediction service."""
