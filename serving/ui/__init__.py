"""The web UI: page routes over the static files in ``serving/static/ui``."""
