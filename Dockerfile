# The registry as a container: one static binary (pure-Go SQLite, no cgo) on an empty image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t id4me-registry .
#   docker run -p 9443:9443 -p 8443:8443 -v id4me-data:/data \
#     -e ID4ME_AUTHORITY_ISSUER=https://id.example -v /etc/id4me:/etc/id4me:ro \
#     -e ID4ME_TLS_CERT=/etc/id4me/tls.crt -e ID4ME_TLS_KEY=/etc/id4me/tls.key id4me-registry
#
# The state is in /data (SQLite), or in PostgreSQL with ID4ME_DB=postgres://…. Every flag of
# `serve` has an ID4ME_* variable. The first operator credential:
#   docker run --rm -v id4me-data:/data id4me-registry admin bootstrap

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/id4me-registry ./cmd/id4me-registry \
 && mkdir -p /out/data

FROM scratch
# Trust anchors for the outbound HTTPS the authority makes (relying parties' jwks_uri).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/id4me-registry /id4me-registry
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENV ID4ME_DB=/data/id4me-registry.db \
    ID4ME_GRPC_ADDR=0.0.0.0:9443 \
    ID4ME_HTTP_ADDR=0.0.0.0:8443 \
    ID4ME_ADMIN_ADDR=0.0.0.0:9090
EXPOSE 9443 8443 9090
VOLUME /data
ENTRYPOINT ["/id4me-registry"]
CMD ["serve"]
