# syntax=docker/dockerfile:1
# Build stage: uv installs the locked runtime dependencies (no dev group) into /app/.venv.
FROM python:3.12-slim-bookworm AS build

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /app
# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY src ./src
COPY migrations ./migrations
COPY alembic.ini ./
# The same install command as `make run` (uv sync --frozen), without the dev group.
RUN uv sync --frozen --no-dev

# Runtime stage: the interpreter, the virtualenv and the code; no uv, no build tools, not root.
FROM python:3.12-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 aisupport \
    && useradd --system --uid 10001 --gid aisupport --home-dir /app --shell /usr/sbin/nologin aisupport

WORKDIR /app
COPY --from=build --chown=aisupport:aisupport /app /app

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENV=prod \
    API_HOST=0.0.0.0 \
    API_PORT=8000

USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('API_PORT', '8000')}/health/live\", timeout=2)"]

# `serve` applies migrations, then serves; SIGTERM stops it cleanly.
CMD ["aisupport", "serve"]
