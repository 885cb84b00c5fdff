# Load tests (Locust) and benchmarks (wrk and in-process): docs/loadtesting.md.
# `make loadtest USERS=50 DURATION=2m`, or `make loadtest HOST=http://127.0.0.1:8000` for a
# server you started yourself.
HOST ?=
USERS ?= 20
SPAWN_RATE ?= 5
DURATION ?= 60s
LOADTEST_REPORTS ?= reports/loadtest
BENCH_DURATION ?= 4
BENCH_REPEATS ?= 3
BENCH_ARGS ?=

.PHONY: loadtest
loadtest: ## Locust, headless (USERS=20 SPAWN_RATE=5 DURATION=60s [HOST=url]); CSV+HTML in reports/loadtest
	$(PY) -m loadtests.run --users $(USERS) --spawn-rate $(SPAWN_RATE) --duration $(DURATION) \
		--reports $(LOADTEST_REPORTS) --artifacts-dir $(ARTIFACTS) $(if $(HOST),--host $(HOST))

.PHONY: loadtest-smoke
loadtest-smoke: ## CI smoke: 15 s of Locust, 4 users, against a fresh server; fails on any failure
	$(PY) -m loadtests.run --users 4 --spawn-rate 4 --duration 15s \
		--reports $(LOADTEST_REPORTS)-smoke --artifacts-dir $(ARTIFACTS)

.PHONY: bench
bench: bytecode ## Benchmark (in-process, wrk, batch, startup, memory); writes docs/benchmarks.md (needs wrk)
	$(PY) -m loadtests.bench --artifacts-dir $(ARTIFACTS) --data $(DATA) \
		--duration $(BENCH_DURATION) --repeats $(BENCH_REPEATS) --output docs/benchmarks.md $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-batch

.PHONY: bench-batch
bench-batch: ## Rows/s of `training predict`, single process against Dask; appended to docs/benchmarks.md
	$(PY) -m loadtests.batchbench --artifacts-dir $(ARTIFACTS) --output docs/benchmarks.md

.PHONY: bench-explain
bench-explain: bytecode ## One patient's /explain p50 beside /predict's, interleaved (needs wrk; docs/explanations.md)
	$(PY) -m loadtests.bench.explain --artifacts-dir $(ARTIFACTS)
