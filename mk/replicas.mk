# Replicas on one machine (issue 19): see docs/kubernetes.md, "Proof on one machine".
# Needs haproxy, postgresql and wrk from Debian (apt-get install -y haproxy postgresql wrk).
REPLICAS_ARGS ?=

.PHONY: replicas-test
replicas-test: $(ARTIFACTS)/current bytecode ## 3 replicas, 1 registry, 1 PostgreSQL log behind HAProxy, under load; fails on a broken invariant
	$(PY) -m loadtests.replicas --artifacts-dir $(ARTIFACTS) --data $(DATA) $(REPLICAS_ARGS)
