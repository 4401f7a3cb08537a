# One image for every FinFocus service: `finfocus serve <service>` picks the role.
FROM python:3.11-slim AS build
WORKDIR /src
# a compiler and OpenSSL's headers for ingest's native record builder (services/ingest/_records.c)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY schemas ./schemas
COPY finfocus ./finfocus
COPY services ./services
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 finfocus
COPY --from=build /install /usr/local
USER finfocus
ENV FINFOCUS_HOME=/home/finfocus/.finfocus
ENTRYPOINT ["finfocus"]
CMD ["--help"]
