# The auditstream processes: `auditstream normalizer`, `worker`, `sink`, `sql`.
#
#   docker build -t auditstream:local .          (docker-compose.yml builds it for you)
#   docker run --rm auditstream:local --help
#
# Settings come from environment variables (see config.py): KAFKA_BOOTSTRAP_SERVERS,
# AUDITSTREAM_CLICKHOUSE_DSN, AUDITSTREAM_HOME, AUDITSTREAM_RETENTION_DAYS, ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    AUDITSTREAM_HOME=/var/lib/auditstream

RUN groupadd --system --gid 10001 auditstream \
 && useradd --system --uid 10001 --gid auditstream --no-create-home \
        --home-dir /var/lib/auditstream --shell /usr/sbin/nologin auditstream \
 && install -d -o auditstream -g auditstream -m 0750 /var/lib/auditstream

WORKDIR /build

# Runtime dependencies first, read from pyproject.toml (the dev extra is not installed) at the
# versions requirements.lock pins, so a code change does not reinstall them: chdb and
# scikit-learn are large.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install -c requirements.lock -r requirements.txt

# The repository root is the `auditstream` package ([tool.setuptools] package-dir), so the
# whole build context (less .dockerignore) is the source. Installed, then the source goes.
COPY . .
RUN pip install -c requirements.lock . \
 && cd / && rm -rf /build

USER auditstream
WORKDIR /var/lib/auditstream

# Healthy while the service in this container answers /healthz (its address is in
# AUDITSTREAM_HOME/services/<role>.json). A container running a one-off command has no
# service: it reports unhealthy, harmlessly.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["python", "-m", "auditstream.ops.healthcheck"]

ENTRYPOINT ["auditstream"]
CMD ["--help"]
