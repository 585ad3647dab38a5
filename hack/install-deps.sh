#!/usr/bin/env bash
# Installs what nodetune's tests need on a Debian machine: network tools,
# Prometheus (server and promtool), etcd, what builds and runs the container
# image (buildah, podman, containerd, runc, the CNI plugins, kmod for the
# modules variant), ipset (which Calico's Felix runs), and kube-apiserver,
# kubectl, kubelet, kube-controller-manager, kube-scheduler, helm and
# Calico's Felix (with Calico's CRDs) built from the Go module proxy.
# Idempotent: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 iperf3 ethtool conntrack nftables iptables prometheus etcd-server
	file kmod buildah podman containerd runc containernetworking-plugins ipset)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
	else
		echo "install-deps: installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi
# Debian's prometheus package starts a server on :9090; the tests start
# their own on other ports and do not need it.
# The Kubernetes programs for the API server and node tests and make
# manifests, built from the Go module proxy in one go build (several
# minutes, once); skipped when cached.
hack/kube/build.sh .cache/bin
# helm for the chart tests (helm lint, helm template), from the module proxy
# too (a few minutes, once); skipped when cached.
hack/kube/helm.sh .cache/bin
# Calico's Felix (as calico-node) and Calico's CRDs, for the tests that run
# a real Felix (internal/felixtest), from the module proxy too (several
# minutes, once); skipped when cached.
hack/felix/build.sh .cache/bin
