# nats-server for the local container test (scripts/test.d/50-images.sh); the
# Helm chart and the operator use the upstream NATS image. Build from the
# repository root; scripts/build-images.sh passes every argument:
#
#   docker build -f images/nats.Dockerfile -t resizer/nats:VERSION .
#
# BINARIES       source: `go install` nats-server VERSION in GO_IMAGE;
#                host: copy the cached binary (scripts/install-nats-server.sh) from HOST_BIN_DIR
# RUNTIME_IMAGE  runtime base (the binary is static)
# VERSION, REVISION, CREATED   the nats-server version, and the OCI labels
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG BINARIES=source

FROM ${GO_IMAGE} AS source
ARG VERSION=2.15.2
RUN CGO_ENABLED=0 GOBIN=/out go install "github.com/nats-io/nats-server/v2@v${VERSION}"

FROM scratch AS host
ARG HOST_BIN_DIR=target/image-bin/release
COPY ${HOST_BIN_DIR}/nats-server /out/nats-server

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE}
ARG RUNTIME_IMAGE
ARG VERSION=""
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="resizer-nats" \
      org.opencontainers.image.description="nats-server with JetStream and 8 MiB messages, for local container tests" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=binaries /out/nats-server /usr/local/bin/nats-server
COPY images/nats.conf /etc/nats/nats.conf
USER 65532:65532
# client, monitoring (/healthz, /jsz), cluster routes
EXPOSE 4222 8222 6222
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["--config", "/etc/nats/nats.conf"]
