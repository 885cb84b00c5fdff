"""What every route shares: errors, middleware, raw responses, OpenAPI, logs and metrics."""
