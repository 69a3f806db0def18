# syntax=docker/dockerfile:1
# The operator's image for your own CI (docker build, buildx, kaniko, buildah):
# the same layout as `make image` builds without Docker (README, "The
# operator's image"): /usr/local/bin/image-promoter on a distroless base with
# glibc, libgcc and the CA bundle, run as nonroot (65532), `image-promoter run`.
#
#   epoch=$(git log -1 --format=%ct)
#   docker build -t REGISTRY/image-promoter:TAG \
#     --build-arg VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg SOURCE=https://github.com/OWNER/image-promoter \
#     --build-arg CREATED=$(date -u -d @$epoch +%Y-%m-%dT%H:%M:%SZ) \
#     --build-arg SOURCE_DATE_EPOCH=$epoch .
#
# SOURCE_DATE_EPOCH makes BuildKit (0.11 and later) write the image's times
# from the commit; add --output type=image,rewrite-timestamp=true for the
# layers' file times too.
#
# The builder is Debian 12 like the base, so the binary finds the glibc it was
# linked against. The toolchain comes from rust-toolchain.toml.

FROM docker.io/library/rust:1.95.0-bookworm AS build
# The same checkout path on every build: paths end up in the binary.
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin image-promoter \
 && cp target/release/image-promoter /image-promoter

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION
ARG REVISION
ARG SOURCE
ARG CREATED
LABEL org.opencontainers.image.title="image-promoter" \
      org.opencontainers.image.description="Kubernetes operator that promotes container images from internal Amazon ECR to public registries" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build --chmod=0755 /image-promoter /usr/local/bin/image-promoter
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /home/nonroot
USER 65532
ENTRYPOINT ["/usr/local/bin/image-promoter"]
CMD ["run"]
