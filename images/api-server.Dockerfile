# The api-server image. Build from the repository root (BuildKit builds only the
# stages the chosen one needs); scripts/build-images.sh passes every argument:
#
#   docker build -f images/api-server.Dockerfile -t resizer/api-server:VERSION .
#
# BINARIES       source: compile in the builder stage (RUST_IMAGE);
#                host: copy binaries built on the host from HOST_BIN_DIR in the context
# RUST_IMAGE     builder image for BINARIES=source
# RUNTIME_IMAGE  runtime base: glibc and libgcc_s are all the binary links against
# HOST_BIN_DIR   context directory holding the host-built, stripped binaries
# VERSION, REVISION, CREATED, PROFILE   recorded in the OCI labels
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARIES=source

# ---- source: the workspace compiled in a Rust image. This stage is the same in
# every service's Dockerfile, so one build's layers serve all five images.
FROM ${RUST_IMAGE} AS source
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake nasm pkg-config libheif-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first: manifests, lockfile and stub sources, so this layer is
# rebuilt only when a Cargo.toml or Cargo.lock changes.
COPY Cargo.toml Cargo.lock ./
COPY contracts/Cargo.toml contracts/
COPY telemetry/Cargo.toml telemetry/
COPY httpsig/Cargo.toml httpsig/
COPY identity/Cargo.toml identity/
COPY auth-cache/Cargo.toml auth-cache/
COPY api-server/Cargo.toml api-server/
COPY worker/Cargo.toml worker/
COPY usage-aggregator/Cargo.toml usage-aggregator/
COPY operator/Cargo.toml operator/
COPY e2e/Cargo.toml e2e/
RUN for m in contracts telemetry httpsig identity auth-cache api-server worker usage-aggregator operator e2e; do \
      mkdir -p "$m/src" && echo 'fn main() {}' >"$m/src/main.rs" && : >"$m/src/lib.rs"; \
    done \
 && cargo build --release --locked -p api-server -p worker -p usage-aggregator -p operator -p auth-cache -p identity --bins \
 && rm -rf contracts telemetry httpsig identity auth-cache api-server worker usage-aggregator operator
# Then the sources (e2e stays a stub: it is a member, not part of any image).
COPY contracts contracts
COPY telemetry telemetry
COPY httpsig httpsig
COPY identity identity
COPY auth-cache auth-cache
COPY api-server api-server
COPY worker worker
COPY usage-aggregator usage-aggregator
COPY operator operator
# Newer than the stub build, so cargo rebuilds the workspace crates.
RUN find contracts telemetry httpsig identity auth-cache api-server worker usage-aggregator operator -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p api-server -p worker -p usage-aggregator -p operator -p auth-cache -p identity --bins \
 && mkdir /out && cp target/release/api-server target/release/worker \
      target/release/usage-aggregator target/release/operator \
      target/release/auth-cache target/release/resizer-admin /out/

# ---- host: binaries built on the host (machines without a Rust image to pull).
FROM scratch AS host
ARG HOST_BIN_DIR=target/image-bin/release
COPY ${HOST_BIN_DIR}/api-server /out/api-server

FROM ${BINARIES} AS binaries

# ---- runtime
FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=""
ARG REVISION=""
ARG CREATED=""
ARG PROFILE=release
LABEL org.opencontainers.image.title="resizer-api-server" \
      org.opencontainers.image.description="Resize API: HTTP in front of the JetStream job queue" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}" \
      dev.resizer.build.profile="${PROFILE}"
COPY --from=binaries /out/api-server /usr/local/bin/api-server
# Numeric, so runAsNonRoot can verify it; nothing is written outside /tmp.
USER 65532:65532
ENV API_LISTEN=0.0.0.0:8080
# Workers fetch staged bodies here, at this container's address on the route to
# NATS unless PEER_ADVERTISE names another.
ENV PEER_LISTEN=0.0.0.0:8081
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/api-server"]
