# drug-classifier: a slim serving image, built from source.
#
#   docker build -t drug-classifier .            # trains, exports and packages the model
#   docker run --rm -p 8000:8000 drug-classifier # serves at once on :8000
#
# Stages:
#   uv        python:3.12-slim + a pinned uv, the lock file copied in (shared by the next two)
#   trainer   the `train` extra from uv.lock; trains and exports the model into /app/artifacts
#             (also the compose `trainer` service, which publishes new models into a volume)
#   serve-env the `serve` extra from uv.lock + this project, installed into /opt/venv
#   runtime   python:3.12-slim + /opt/venv + the exported artifact, as a non-root user
#
# Dependencies are installed before any source is copied, so editing code rebuilds only the
# small layers at the end. Everything follows uv.lock (`--frozen`): no resolution at build time.
# See docs/docker.md.

ARG PYTHON_IMAGE=python:3.12-slim

# --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS uv

# uv only lives in the build stages; the runtime stage never sees it.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# Install into a venv at a fixed path that the runtime stage copies as is; byte-compile now
# (the runtime user cannot write __pycache__), copy files rather than hardlink from a cache
# that is thrown away, and never let uv download an interpreter: use the image's CPython.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# One unprivileged account, same uid/gid in every stage, so files written by the trainer into
# a shared volume are readable (and replaceable) by the server and the other way round.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" drugclf \
 && useradd --system --uid "${APP_UID}" --gid drugclf --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin drugclf

WORKDIR /src
COPY pyproject.toml uv.lock ./

# --------------------------------------------------------------------------------------------
FROM uv AS trainer

# Third-party dependencies first (cached until pyproject.toml or uv.lock change).
RUN uv sync --frozen --no-dev --extra train --no-install-project --no-editable

# Then the project itself (README.md: the build backend reads it as the long description);
# serving/ is left out so that editing it does not train again.
COPY README.md ./
COPY drugclf/ drugclf/
COPY training/ training/
RUN uv sync --frozen --no-dev --extra train --no-editable

WORKDIR /app
COPY data/ data/
RUN mkdir -p artifacts runs && chown -R drugclf:drugclf /app
ENV PATH=/opt/venv/bin:$PATH \
    DRUGCLF_ARTIFACTS_DIR=/app/artifacts
USER ${APP_UID}:${APP_UID}

# Train, evaluate, export to ONNX (parity-gated) and promote: what `make train export` does.
RUN python -m training full --data data/drug200.csv --artifacts-dir artifacts

# As a service (docker compose run --rm trainer), it trains again and publishes into the
# artifacts volume that the API serves from; the API hot-reloads the new `current`.
CMD ["python", "-m", "training", "full", "--data", "data/drug200.csv", "--artifacts-dir", "artifacts"]

# --------------------------------------------------------------------------------------------
FROM uv AS serve-env

# The test suites that wheels ship are never imported by a server: drop them so the runtime
# layer carries only what runs (docs/docker.md, "Size"). The `postgres` extra (psycopg) lets
# several replicas share one prediction log (deploy/k8s); SQLite needs nothing more.
RUN uv sync --frozen --no-dev --extra serve --extra postgres --no-install-project --no-editable \
 && find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +

# Only the packages the server imports: the feature contract (drugclf) and serving.
# training/ is not copied, so its console script is dropped too.
COPY README.md ./
COPY drugclf/ drugclf/
COPY serving/ serving/
RUN uv sync --frozen --no-dev --extra serve --extra postgres --no-editable \
 && rm -f /opt/venv/bin/drugclf-train

# --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" drugclf \
 && useradd --system --uid "${APP_UID}" --gid drugclf --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin drugclf \
 && mkdir -p /app/var \
 && chown drugclf:drugclf /app /app/var

COPY --from=serve-env /opt/venv /opt/venv
COPY --from=trainer --chown=drugclf:drugclf /app/artifacts /app/artifacts

# Configuration is by environment only (the variables `serving` documents); these are the
# image's defaults. DRUGCLF_WORKERS is left unset: the server starts one worker per core.
# /app/var is the server's one writable data dir (the SQLite prediction log), set explicitly so
# it stays there when DRUGCLF_ARTIFACTS_DIR points at a mounted folder elsewhere.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DRUGCLF_ARTIFACTS_DIR=/app/artifacts \
    DRUGCLF_DATA_DIR=/app/var \
    DRUGCLF_HOST=0.0.0.0 \
    DRUGCLF_PORT=8000

WORKDIR /app
# Numeric, so that Kubernetes `runAsNonRoot` can verify it without reading /etc/passwd.
USER ${APP_UID}:${APP_UID}
EXPOSE 8000

# Slim has no curl: probe readiness (model loaded) with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRUGCLF_PORT', '8000') + '/ready', timeout=4)"]

# Exec form: the server is PID 1 and receives SIGTERM itself (no shell in between).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "serving"]
