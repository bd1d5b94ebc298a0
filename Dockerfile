# syntax=docker/dockerfile:1
# One image, two programs: `ecs` (the default command) and `statusbridge`.
#
#   docker build -t ecs-statusbridge:0.1.0 .
#   docker run --rm -p 8448:8448 -e ECS_HOST=0.0.0.0 \
#       -e ECS_CREDENTIALS_FILE=/run/secrets/ecs.htpasswd -v "$PWD/ecs.htpasswd:/run/secrets/ecs.htpasswd:ro" \
#       -v /var/run/docker.sock:/var/run/docker.sock --group-add "$(stat -c %g /var/run/docker.sock)" \
#       ecs-statusbridge:0.1.0
#   docker run --rm ecs-statusbridge:0.1.0 statusbridge check --config /etc/statusbridge.toml
#
# ECS binds 0.0.0.0 only with a credentials file (ECS_CREDENTIALS_FILE); without one it
# refuses to start on anything but loopback. See docs/operations.md.

# The base is pinned to a patch release; pass --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:...
# to pin it to a digest as well.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build==1.2.2.post1"
COPY pyproject.toml README.md ./
COPY ecs ./ecs
COPY statusbridge ./statusbridge
RUN python -m build --wheel --outdir /dist . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install /dist/*.whl

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ecs-statusbridge" \
      org.opencontainers.image.description="ECS, the Ephemeral Container Service, and statusbridge, its Pingdom/Cachet/SignalFx monitoring bridge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/operations.md"
RUN groupadd --system --gid 10001 ecs \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ecs \
    && mkdir -p /var/lib/statusbridge \
    && chown 10001:10001 /var/lib/statusbridge
COPY --from=builder /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ECS_LOG_FORMAT=json \
    STATUSBRIDGE_LOG_JSON=true
# statusbridge's default state_path (statusbridge.sqlite3) is relative to here.
WORKDIR /var/lib/statusbridge
USER 10001:10001
EXPOSE 8448 9108
# Quick health of ECS (slim has no curl); a statusbridge container sets
# HEALTHCHECK_URL=http://127.0.0.1:9108/health instead.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL') or 'http://127.0.0.1:%s/v1.1/_health' % os.environ.get('ECS_PORT', '8448'), timeout=2)"]
ENTRYPOINT ["entrypoint"]
CMD ["ecs", "serve"]
