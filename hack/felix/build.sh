#!/usr/bin/env bash
# Builds Calico's Felix from the Go module proxy into a cache directory
# (default .cache/bin) as calico-node, the name its process has on a real
# node (so /proc/PID/comm matches what nodetune's owner detection sees),
# and puts Calico's CRD manifest of the same version beside it as
# calico-crds.yaml. The tests that run a real Felix against kube-apiserver
# (internal/felixtest) use both. Skipped when both are cached at this version.
#
# The calico monorepo's go.mod cannot be required as is: it replaces
# github.com/projectcalico/api with ./api, a path that exists only in its own
# repository. A scratch module requires the calico module, copies its replace
# block with that one line pointed at the published api module, and builds
# without cgo (Felix's BPF data plane needs cgo; the nftables/iptables data
# plane the tests use does not).
#
# Usage: hack/felix/build.sh [OUTDIR]
#        (CALICO_VERSION: the calico module version, release-v3.28 line by default)
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${CALICO_VERSION:-v1.11.0-cni-plugin.0.20250813170300-a0db560f0520}
# The published api module that matches the release-v3.28 line.
api_version=${CALICO_API_VERSION:-v0.0.0-20240708202104-e3f70b269c2c}
out=${1:-.cache/bin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp=$out/.calico-node.version

if [[ -x $out/calico-node && -s $out/calico-crds.yaml && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
	echo "felix/build: calico-node and calico-crds.yaml $version already in $out"
	exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

dir=$(go mod download -json "github.com/projectcalico/calico@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [[ ! -f $dir/go.mod || ! -f $dir/manifests/crds.yaml ]]; then
	echo "felix/build: could not download github.com/projectcalico/calico@$version" >&2
	exit 1
fi
goversion=$(awk '$1 == "go" { print $2; exit }' "$dir/go.mod")
{
	printf 'module nodetune.invalid/felixbuild\n\ngo %s\n\nrequire github.com/projectcalico/calico %s\n\n' "$goversion" "$version"
	sed -n '/^replace (/,/^)/p' "$dir/go.mod" |
		sed "s#github.com/projectcalico/api => ./api#github.com/projectcalico/api => github.com/projectcalico/api $api_version#"
} >go.mod
if grep -q '=> \./' go.mod; then
	echo "felix/build: the calico go.mod replaces a module with a local path this script does not know:" >&2
	grep '=> \./' go.mod >&2
	exit 1
fi
# The calico module's own go.sum covers its dependencies; the api module's
# sum is added by the build (GOFLAGS=-mod=mod).
cp "$dir/go.sum" go.sum
chmod u+w go.sum

echo "felix/build: building Felix from github.com/projectcalico/calico@$version; this takes several minutes"
start=$SECONDS
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$scratch/calico-node" \
	github.com/projectcalico/calico/felix/cmd/calico-felix
# Move into place only after a whole build, so an interrupted run never
# leaves a half-written binary in the cache.
cp "$dir/manifests/crds.yaml" "$out/calico-crds.yaml.tmp"
chmod 0644 "$out/calico-crds.yaml.tmp"
mv "$out/calico-crds.yaml.tmp" "$out/calico-crds.yaml"
mv "$scratch/calico-node" "$out/calico-node"
echo "$version" >"$stamp"
echo "felix/build: wrote calico-node and calico-crds.yaml into $out in $((SECONDS - start))s"
