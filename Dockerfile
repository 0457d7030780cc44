# syntax=docker/dockerfile:1.7
# One image per Accord service, from this one file:
#
#   docker build --build-arg SERVICE=orchestrator -t accord-orchestrator:dev .
#   (SERVICE: orchestrator, provisioner, authz, auditor, authn or sources)
#
# The image holds only that service's packages (uv sync --package accord-$SERVICE, from
# uv.lock, no dev dependencies) in /app/.venv, runs as the unprivileged user 10001, writes
# nothing outside /tmp (a read-only root file system works), and asks its own /healthz.
# Besides the service it has the `accord` command with the plugins that service installs
# (`accord token`, `accord dlq`, `accord sagas`, `accord audit`, ...).
#
# The base image is pinned by tag; CI with registry access pins the digest too:
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
# Builder and runtime must use the same image: the venv points at its Python.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS builder
ARG SERVICE
ARG TARGETARCH
RUN test -n "$SERVICE" || { echo "--build-arg SERVICE=<orchestrator|provisioner|authz|auditor|authn|sources> is required" >&2; exit 1; }
# uv.lock has wheels of every dependency for amd64; on arm64 faust-streaming (auditor) is
# built from source and needs a compiler. The builder stage is thrown away.
RUN if [ "${TARGETARCH:-amd64}" != "amd64" ]; then \
        apt-get update && apt-get install -y --no-install-recommends build-essential \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Third-party dependencies first: this layer is rebuilt only when the lock or a member's
# metadata changes, not for every source edit. uv needs every member's pyproject.toml to
# read the workspace.
COPY pyproject.toml uv.lock ./
COPY libs/events/pyproject.toml libs/events/pyproject.toml
COPY libs/runtime/pyproject.toml libs/runtime/pyproject.toml
COPY libs/stack/pyproject.toml libs/stack/pyproject.toml
COPY services/orchestrator/pyproject.toml services/orchestrator/pyproject.toml
COPY services/provisioner/pyproject.toml services/provisioner/pyproject.toml
COPY services/authz/pyproject.toml services/authz/pyproject.toml
COPY services/auditor/pyproject.toml services/auditor/pyproject.toml
COPY services/authn/pyproject.toml services/authn/pyproject.toml
COPY services/sources/pyproject.toml services/sources/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "accord-$SERVICE"
# Then Accord's own packages, installed as wheels (not editable): the runtime image needs
# no source tree.
COPY libs libs
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "accord-$SERVICE" \
    && ln -s "accord-$SERVICE" /app/.venv/bin/accord-service

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="accord-${SERVICE}" \
      org.opencontainers.image.description="Accord ${SERVICE}: event-driven identity orchestration" \
      org.opencontainers.image.licenses="Apache-2.0"
# The service user. /var/lib/accord is the only folder it owns: volumes mounted there
# (audit checkpoints, audit and authn keys) start out writable for it.
RUN groupadd --system --gid 10001 accord \
    && useradd --system --uid 10001 --gid accord --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin accord \
    && install -d -o accord -g accord -m 0755 /var/lib/accord
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ACCORD_SERVICE=${SERVICE} \
    ACCORD_HTTP_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 8701 8702 8703 8704 8705 8706
# Alive = /healthz answers on the service's port (ACCORD_<SERVICE>_PORT, default 870x).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; s = os.environ['ACCORD_SERVICE']; d = {'orchestrator': 8701, 'provisioner': 8702, 'authz': 8703, 'auditor': 8704, 'authn': 8705, 'sources': 8706}; p = os.environ.get(f'ACCORD_{s.upper()}_PORT', d[s]); urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]
# SIGTERM starts the graceful shutdown (stop consuming, finish in-flight work, commit,
# close), at most ACCORD_SHUTDOWN_TIMEOUT_S (20 s) plus the producer's flush: give it 40 s
# (docker stop -t 40, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/.venv/bin/accord-service"]
