# Serving: the production server (granian, one worker per core) on the published model.
# SERVE_HOST, not HOST: mk/loadtest.mk uses HOST for the URL Locust targets.
PORT ?= 8000
WORKERS ?= 0
SERVE_HOST ?= 127.0.0.1
# Local development: with no DRUGCLF_ADMIN_TOKEN, admin endpoints open to loopback (DEV_MODE=0 closes).
DEV_MODE ?= 1

# A fresh clone has no model yet: train, export and promote one first (make pipeline).
$(ARTIFACTS)/current:
	@echo "no model published in $(ARTIFACTS)/: running make pipeline first"
	$(MAKE) pipeline

.PHONY: serve
serve: $(ARTIFACTS)/current bytecode ## Serve artifacts/current (make serve PORT=8000 WORKERS=2; WORKERS=0 = one per core)
	DRUGCLF_PORT=$(PORT) DRUGCLF_WORKERS=$(WORKERS) DRUGCLF_HOST=$(SERVE_HOST) DRUGCLF_DEV_MODE=$(DEV_MODE) $(PY) -m serving

.PHONY: serve-dev
serve-dev: $(ARTIFACTS)/current bytecode ## Serve with one worker and readable text logs (make serve-dev PORT=8000)
	DRUGCLF_PORT=$(PORT) DRUGCLF_WORKERS=1 DRUGCLF_HOST=$(SERVE_HOST) DRUGCLF_DEV_MODE=$(DEV_MODE) DRUGCLF_LOG_FORMAT=text $(PY) -m serving
