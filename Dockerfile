# One image for every FinFocus service: `finfocus serve <service>` picks the role; the same
# image is the command line (`docker compose run --rm cli ...`).
FROM python:3.11-slim AS build
WORKDIR /src
# a compiler and OpenSSL's headers for ingest's native record builder (services/ingest/_records.c)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY schemas ./schemas
COPY finfocus ./finfocus
COPY services ./services
# runtime dependencies only: no extras (tests, testcontainers, the docker SDK stay out)
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 finfocus \
    && mkdir -p /var/lib/finfocus /run/finfocus \
    && chown 10001:10001 /var/lib/finfocus /run/finfocus
COPY --from=build /install /usr/local
COPY deploy/docker/entrypoint.sh /usr/local/bin/finfocus-entrypoint
# FINFOCUS_HOME is a volume: specs, plugins, playbooks and monitors shared by the services and
# the CLI (a named volume takes this directory's owner on first use)
ENV FINFOCUS_HOME=/var/lib/finfocus \
    FINFOCUS_METRICS_HOST=0.0.0.0 \
    FINFOCUS_METRICS_PORT=9464 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/finfocus"]
USER 10001
# 9464: /metrics /healthz /readyz; 8080: ingest's HTTP intake; 8770: the api and console
EXPOSE 9464 8080 8770
ENTRYPOINT ["finfocus-entrypoint"]
CMD ["--help"]
