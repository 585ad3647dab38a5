# nodetune's image for builders with a Docker engine: a static binary on a
# distroless base. `make image` builds the same images without Docker or a
# registry (hack/image.sh, buildah from scratch, OCI archives in bin/).
#
#   make image-docker               ghcr.io/nodetune/nodetune:$(VERSION)
#                                   and ghcr.io/nodetune/nodetune-modules:$(VERSION)
#   docker build --target modules . the variant with modprobe, for the
#                                   load-modules kustomize component
#
# The binary needs no other program: it reads /proc and /sys, talks netlink
# and the ethtool ioctl itself, and writes sysctls and RPS masks as files.
# The one exception is loading kernel modules (the ip_vs modules for
# kube-proxy's IPVS mode), which goes through modprobe; only the "modules"
# variant carries it.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
	-o /out/nodetune ./cmd/nodetune

# The variant that can load kernel modules: Debian's kmod (modprobe), with
# the host's /lib/modules mounted read-only by the load-modules component.
FROM debian:trixie-slim AS modules
RUN apt-get update && apt-get install -y --no-install-recommends kmod \
	&& rm -rf /var/lib/apt/lists/*
COPY --from=build /out/nodetune /usr/bin/nodetune
ENTRYPOINT ["/usr/bin/nodetune"]
CMD ["serve"]

# The default image: no shell, no package manager, nothing but the binary
# and CA certificates. It runs as root with an empty or NET_ADMIN-only
# capability set (see docs/deploy.md); the manifests set the user.
FROM gcr.io/distroless/static-debian12 AS nodetune
COPY --from=build /out/nodetune /usr/bin/nodetune
ENTRYPOINT ["/usr/bin/nodetune"]
CMD ["serve"]
