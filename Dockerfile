# One image, two programs: `ecs` (the default command) and `statusbridge`.
#
# The build needs no network: it installs wheels built on the host into a venv.
#
#   python3 -m pip wheel --wheel-dir dist/wheels .        # the project and its dependencies
#   docker build -t ecs-statusbridge:0.1.0 .              # FROM python:3.11.11-slim-bookworm
#   scripts/image                                         # or all of it, FROM a base made from
#                                                         # Debian's packages (no hub needed)
#
#   docker run --rm -p 8448:8448 -e ECS_HOST=0.0.0.0 \
#       -e ECS_CREDENTIALS_FILE=/run/secrets/ecs.htpasswd -v "$PWD/ecs.htpasswd:/run/secrets/ecs.htpasswd:ro" \
#       -v /var/run/docker.sock:/var/run/docker.sock --group-add "$(stat -c %g /var/run/docker.sock)" \
#       ecs-statusbridge:0.1.0
#   docker run --rm ecs-statusbridge:0.1.0 statusbridge check --config /etc/statusbridge.toml
#
# ECS binds 0.0.0.0 only with a credentials file (ECS_CREDENTIALS_FILE); without one it
# refuses to start on anything but loopback. The image runs as uid 10001, which reaches the
# engine socket only through its group (--group-add). See docs/operations.md, "The image".

# Any Debian-based image with python3 (>= 3.11) and its venv module: the public Python image
# by default (pinned to a patch release; add @sha256:... to pin a digest), or the one
# scripts/image makes from Debian's packages (local/debian-python:bookworm, which has no
# `python` command and no pip: everything here runs `python3` or the venv's programs).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY dist/wheels /wheels
# Only the wheels in the context: --no-index never asks a package index. pip and setuptools
# leave the venv afterwards (nothing at run time needs them).
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels /wheels/ecs_statusbridge-*.whl \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ecs-statusbridge" \
      org.opencontainers.image.description="ECS, the Ephemeral Container Service, and statusbridge, its Pingdom/Cachet/SignalFx monitoring bridge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/operations.md" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --system --gid 10001 ecs \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ecs \
    && mkdir -p /var/lib/statusbridge /var/lib/ecs \
    && chown 10001:10001 /var/lib/statusbridge /var/lib/ecs
COPY --from=builder /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ECS_LOG_FORMAT=json \
    STATUSBRIDGE_LOG_FORMAT=json
# statusbridge's default state_path (statusbridge.sqlite3) is relative to here, and so is
# ECS's (ecs-state.sqlite3); on a read-only root give ECS ECS_STATE_PATH=/var/lib/ecs/...
# on a volume there (a new volume takes this directory's owner, 10001).
WORKDIR /var/lib/statusbridge
USER 10001:10001
EXPOSE 8448 9108
# Quick health of ECS (no curl in the image; `python` is the venv's); a statusbridge
# container sets HEALTHCHECK_URL=http://127.0.0.1:9108/health instead.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL') or 'http://127.0.0.1:%s/v1.1/_health' % os.environ.get('ECS_PORT', '8448'), timeout=2)"]
ENTRYPOINT ["entrypoint"]
CMD ["ecs", "serve"]
