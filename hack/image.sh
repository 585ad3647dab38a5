#!/usr/bin/env bash
# Builds nodetune's container images without a Docker daemon and without any
# registry, as OCI archives: buildah starts from an empty image ("scratch"),
# copies the static binary in, and writes the result straight to a file.
#
#   nodetune       the static binary alone, at /usr/bin/nodetune (no shell)
#   nodetune-modules  the same, plus modprobe for the load-modules component:
#                  the build machine's kmod and the shared libraries it links,
#                  copied in with their paths (make deps installs kmod)
#
# Usage: hack/image.sh [-m] BINARY OUTDIR [NAME:TAG]
#   -m         also build the modules variant
#   BINARY     a static nodetune binary (make build)
#   OUTDIR     receives nodetune.oci.tar (and nodetune-modules.oci.tar)
#   NAME:TAG   the image's reference inside the archives
#              (default ghcr.io/nodetune/nodetune:devel)
#
# Load an archive with `podman load -i`, `ctr images import`, or push it with
# `skopeo copy oci-archive:FILE docker://REGISTRY/...`.
set -euo pipefail

modules=false
if [[ ${1:-} == -m ]]; then
	modules=true
	shift
fi
if (($# < 2)); then
	sed -n '2,/^set /p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
	exit 2
fi
bin=$1 out=$2 ref=${3:-ghcr.io/nodetune/nodetune:devel}
name=${ref%:*} tag=${ref##*:}
arch=${GOARCH:-$(go env GOARCH 2>/dev/null || echo amd64)}
if ! command -v buildah >/dev/null; then
	echo "image: buildah is not installed (make deps installs it)" >&2
	exit 1
fi
if ! file -b "$bin" 2>/dev/null | grep -q 'statically linked'; then
	echo "image: $bin is not a statically linked binary (make build makes one)" >&2
	exit 1
fi
mkdir -p "$out"

# Working containers are removed even when a step fails.
containers=()
cleanup() {
	for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# new starts a working container from scratch with nodetune in it.
new() {
	local c
	c=$(buildah from scratch)
	containers+=("$c")
	buildah copy --quiet --chmod 0755 "$c" "$bin" /usr/bin/nodetune >/dev/null
	buildah config --os linux --arch "$arch" \
		--entrypoint '["/usr/bin/nodetune"]' --cmd serve \
		--env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		--label org.opencontainers.image.title=nodetune \
		--label org.opencontainers.image.version="$tag" \
		--label org.opencontainers.image.source=https://github.com/nodetune/nodetune "$c"
	echo "$c"
}

# commit writes container $1 as image $2 into the OCI archive $3.
commit() {
	rm -f "$3"
	buildah commit --quiet --rm "$1" "oci-archive:$3:$2" >/dev/null
	echo "image: $3 ($2)"
}

c=$(new)
commit "$c" "$name:$tag" "$out/nodetune.oci.tar"

if $modules; then
	kmod=$(command -v kmod || true)
	if [[ -z $kmod ]]; then
		echo "image: kmod is not installed, so the modules variant has no modprobe (make deps installs it)" >&2
		exit 1
	fi
	c=$(new)
	# kmod and every library the dynamic loader resolves for it, at the same
	# paths; kmod called as modprobe acts as modprobe.
	mapfile -t libs < <(ldd "$kmod" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
	for f in "${libs[@]}"; do
		buildah copy --quiet "$c" "$(readlink -f "$f")" "$f" >/dev/null
	done
	buildah copy --quiet --chmod 0755 "$c" "$(readlink -f "$kmod")" /usr/sbin/modprobe >/dev/null
	commit "$c" "$name-modules:$tag" "$out/nodetune-modules.oci.tar"
fi
