"""The prediction log: every prediction recorded off the request path (SQLite or PostgreSQL).

``log``: the worker side (``prediction_log(settings, registry)`` builds it, the app starts it
in the lifespan and calls ``record()`` once per ``/predict`` request). ``writer``: the writer
process each worker starts. ``backends``, ``records`` and ``wire`` are shared by both and need
only msgspec: this package imports nothing on its own, so the writer process starts without
the server's dependencies.
"""
