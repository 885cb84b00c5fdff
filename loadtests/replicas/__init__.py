"""``make replicas-test``: real replicas, one registry, one log, behind HAProxy (issue 19).

Several real server processes share one artifacts folder and one PostgreSQL prediction log
behind a real HAProxy, under load. ``python -m loadtests.replicas`` prints the report and fails
on a broken invariant; see docs/kubernetes.md, "Proof on one machine".
"""
