#!/usr/bin/env bash
# Builds helm from the Go module proxy into a cache directory (default
# .cache/bin), for the chart tests (helm lint, helm template) and for
# installing the chart. Skips the build when the wanted version is already
# there. `go install` of a pinned module version needs no scratch module:
# helm's own go.mod and go.sum pin its dependencies.
#
# Usage: hack/kube/helm.sh [OUTDIR]    (HELM_VERSION=v4.3.1 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${HELM_VERSION:-v4.3.1}
out=${1:-.cache/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp=$out/.helm-version

if [[ -x $out/helm && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
	echo "kube/helm: helm $version already in $out"
	exit 0
fi

major=${version%%.*}
# Build into a scratch directory and move the binary into place, so a
# failed or interrupted build never leaves a half-written helm in the cache.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "kube/helm: building helm $version (a few minutes)"
CGO_ENABLED=0 GOBIN=$scratch go install -trimpath \
	-ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$version" \
	"helm.sh/helm/$major/cmd/helm@$version"
mv "$scratch/helm" "$out/helm"
echo "$version" >"$stamp"
echo "kube/helm: wrote $out/helm"
