#!/usr/bin/env bash
# Builds kube-apiserver and kubectl from the Go module proxy into a cache
# directory (default .cache/bin), for the Kubernetes integration tests and
# `make manifests`. Skips the build when both binaries of the wanted version
# are already there.
#
# The kubernetes module cannot be required as is: its go.mod replaces the
# k8s.io staging modules with ./staging/... paths that exist only in its own
# repository. A scratch module outside the repository requires it and
# replaces each of those modules with its published v0.X.Y release instead.
# The list of staging modules is read from the downloaded go.mod, so a new
# Kubernetes version needs only KUBE_VERSION changed.
#
# Usage: hack/kube/build.sh [OUTDIR]    (KUBE_VERSION=v1.34.1 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${KUBE_VERSION:-v1.34.1}
out=${1:-.cache/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp=$out/.kube-version

if [[ -x $out/kube-apiserver && -x $out/kubectl && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
	echo "kube/build: kube-apiserver and kubectl $version already in $out"
	exit 0
fi

# Staging modules are published as v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>.
staging_version=v0.${version#v1.}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

go mod init nodetune.invalid/kubebuild >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
if [[ ! -f $gomod ]]; then
	echo "kube/build: could not download the go.mod of k8s.io/kubernetes@$version" >&2
	exit 1
fi
# Lines such as "k8s.io/api => ./staging/src/k8s.io/api" (inside a replace block).
mapfile -t staging < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod")
if ((${#staging[@]} == 0)); then
	echo "kube/build: found no ./staging replacements in $gomod" >&2
	exit 1
fi
edits=(-require="k8s.io/kubernetes@$version")
for m in "${staging[@]}"; do
	edits+=(-replace="$m=$m@$staging_version")
done
go mod edit "${edits[@]}"
echo "kube/build: building kube-apiserver and kubectl $version (${#staging[@]} staging modules replaced by $staging_version); this takes several minutes"

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$version") -X $pkg.gitTreeState=clean"
done
# One go build for both binaries so the shared packages compile once.
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$scratch/bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
mv "$scratch/bin/kube-apiserver" "$scratch/bin/kubectl" "$out/"
echo "$version" >"$stamp"
echo "kube/build: wrote $out/kube-apiserver and $out/kubectl"
