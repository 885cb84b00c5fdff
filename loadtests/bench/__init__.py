"""``make bench``: in-process model timings, HTTP figures with wrk, startup and memory.

Run ``python -m loadtests.bench --help``. Every figure is measured several times and reported as
min / median / max, because the machine it runs on is shared and noisy.
"""
