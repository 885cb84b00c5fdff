# Web UI: browser tests in Debian's Chromium (apt-get install -y chromium), never a downloaded one.

.PHONY: test-ui
test-ui: ## Browser tests of the web UI against the real server (screenshots in test-artifacts/ui/)
	$(PY) -m pytest tests/ui
