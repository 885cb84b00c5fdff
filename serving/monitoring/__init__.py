"""What the model did: the prediction log, drift, the summary and their routes."""
