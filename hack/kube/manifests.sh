#!/usr/bin/env bash
# Renders nodetune's kustomize overlays, alone and with the optional
# components, into OUTDIR (default bin/manifests), one file per variant, with
# the kubectl that hack/kube/build.sh builds. The image tag is IMAGE_TAG, or
# else the version `make` stamps into the binary (git describe), so a
# rendered DaemonSet always runs a pinned image; the repository's manifests
# carry a placeholder tag that cannot be pulled.
#
# Usage: hack/kube/manifests.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
mkdir -p .cache
out=${1:-bin/manifests}
tag=${IMAGE_TAG:-$(git describe --tags --always --dirty 2>/dev/null || true)}
if [[ -z $tag || $tag == latest ]]; then
	echo "manifests: set IMAGE_TAG to the image version to deploy (not latest)" >&2
	exit 1
fi

kubectl=${KUBECTL:-.cache/bin/kubectl}
if [[ ! -x $kubectl ]]; then
	hack/kube/build.sh .cache/bin
fi

# variant file name, overlay, components (space-separated)
variants=(
	"observe observe"
	"remediate remediate"
	"observe-prometheus-operator observe prometheus-operator"
	"remediate-prometheus-operator remediate prometheus-operator"
	"remediate-load-modules remediate load-modules"
	"remediate-calico remediate calico"
)

mkdir -p "$out"
# kustomize refuses absolute paths, so the wrapping kustomizations live in
# the repository (under the git-ignored bin, not .cache, which may be a
# symlink to a cache shared by several checkouts: a path through it would
# resolve into another checkout's deploy/) and name the overlays relatively.
mkdir -p "$repo/bin"
scratch=$(mktemp -d "$repo/bin/.manifests.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
for v in "${variants[@]}"; do
	read -r name overlay components <<<"$v"
	dir=$scratch/$name
	mkdir -p "$dir"
	# Relative to where the scratch directory really is: .cache may be a
	# symbolic link to a cache shared by several checkouts, and kustomize
	# resolves the link, so a fixed ../../.. would render another checkout.
	up=$(realpath --relative-to="$(realpath "$dir")" "$repo")
	{
		echo "apiVersion: kustomize.config.k8s.io/v1beta1"
		echo "kind: Kustomization"
		echo "resources: [$up/deploy/overlays/$overlay]"
		if [[ -n $components ]]; then
			echo "components:"
			for c in $components; do echo "  - $up/deploy/components/$c"; done
		fi
		echo "images:"
		echo "  - {name: ghcr.io/nodetune/nodetune, newTag: \"$tag\"}"
		echo "  - {name: ghcr.io/nodetune/nodetune-modules, newTag: \"$tag\"}"
	} >"$dir/kustomization.yaml"
	"$kubectl" kustomize "$dir" >"$out/$name.yaml"
	echo "manifests: $out/$name.yaml"
done
