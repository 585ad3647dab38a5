#!/usr/bin/env bash
# Builds the Kubernetes programs nodetune's tests run from the Go module proxy
# into a cache directory (default .cache/bin): kube-apiserver and kubectl for
# the API server tests and `make manifests`; kubelet, kube-controller-manager
# and kube-scheduler for the tests on a real node (deploy/nodetest). Only the
# programs missing from the cache, or of another version, are built, and all
# of them in one `go build`, so the packages they share compile once.
#
# The kubernetes module cannot be required as is: its go.mod replaces the
# k8s.io staging modules with ./staging/... paths that exist only in its own
# repository. A scratch module outside the repository requires it and
# replaces each of those modules with its published v0.X.Y release instead.
# The list of staging modules is read from the downloaded go.mod, so a new
# Kubernetes version needs only KUBE_VERSION changed.
#
# Usage: hack/kube/build.sh [OUTDIR [PROGRAM...]]   (KUBE_VERSION=v1.34.1 by default;
#        all five programs when none is named)
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${KUBE_VERSION:-v1.34.1}
out=${1:-.cache/bin}
shift || true
programs=("$@")
if ((${#programs[@]} == 0)); then
	programs=(kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler)
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Each program's version is kept beside it (PROGRAM.version): the cache is
# shared by checkouts that may want different sets of programs.
want=()
for p in "${programs[@]}"; do
	if [[ -x $out/$p && "$(cat "$out/.$p.version" 2>/dev/null)" == "$version" ]]; then
		continue
	fi
	# The stamp of earlier versions of this script, for kube-apiserver and kubectl.
	if [[ -x $out/$p && ($p == kube-apiserver || $p == kubectl) && "$(cat "$out/.kube-version" 2>/dev/null)" == "$version" ]]; then
		echo "$version" >"$out/.$p.version"
		continue
	fi
	want+=("$p")
done
if ((${#want[@]} == 0)); then
	echo "kube/build: ${programs[*]} $version already in $out"
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
pkgs=()
for p in "${want[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$p"); done
echo "kube/build: building ${want[*]} $version (${#staging[@]} staging modules replaced by $staging_version); this takes several minutes"

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$version") -X $pkg.gitTreeState=clean"
done
start=$SECONDS
# One go build for every program, so the shared packages compile once.
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$scratch/bin/" "${pkgs[@]}"
for p in "${want[@]}"; do
	mv "$scratch/bin/$p" "$out/$p"
	echo "$version" >"$out/.$p.version"
done
echo "kube/build: wrote ${want[*]} into $out in $((SECONDS - start))s"
