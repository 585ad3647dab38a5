#!/usr/bin/env bash
# Captures this node (or the network namespace this runs in) into a fixture
# tree that probestest.Load reads, so a problem seen on a real node can
# become a test. Usage: hack/capture-fixture.sh DIR
# It samples the counters twice, one second apart (proc.before, proc).
set -euo pipefail
out=${1:?usage: capture-fixture.sh DIR}
mkdir -p "$out"/{proc,proc.before,sys/class/net,rootfs/etc/cni/net.d,netlink,ethtool}

counters() { # copy the files whose values feed rates
	local dst=$1
	mkdir -p "$dst"/net/stat "$dst"/self/net
	cp /proc/stat /proc/softirqs "$dst"/
	cp /proc/net/softnet_stat "$dst"/net/
	cp /proc/net/stat/nf_conntrack "$dst"/net/stat/ 2>/dev/null || true
	# procfs follows proc/self to a pid directory.
	mkdir -p "$dst"/1/net && cp /proc/net/snmp "$dst"/1/net/snmp && ln -sfn 1 "$dst"/self
}
counters "$out"/proc.before
sleep 1
counters "$out"/proc
rm -rf "$out"/proc/self "$out"/proc.before/self
ln -sfn 1 "$out"/proc/self
ln -sfn 1 "$out"/proc.before/self
cp /proc/meminfo /proc/modules /proc/interrupts "$out"/proc/ 2>/dev/null || true
mkdir -p "$out"/proc/sys/kernel "$out"/proc/sys/net/netfilter "$out"/proc/sys/net/core
cp /proc/sys/kernel/osrelease "$out"/proc/sys/kernel/
for f in nf_conntrack_count nf_conntrack_max; do
	cp /proc/sys/net/netfilter/$f "$out"/proc/sys/net/netfilter/ 2>/dev/null || true
done
# Global sysctls: absent inside a network namespace other than the host's.
for f in netdev_max_backlog netdev_budget; do cp /proc/sys/net/core/$f "$out"/proc/sys/net/core/ 2>/dev/null || true; done
# Agents: only the names nodetune looks for, one pid directory each.
n=100
for pid in $(ls /proc | grep -E '^[0-9]+$'); do
	comm=$(cat /proc/$pid/comm 2>/dev/null || true)
	case "$comm" in calico-node|flanneld|cilium-agent|kube-proxy|irqbalance)
		n=$((n + 1)); mkdir -p "$out"/proc/$n; echo "$comm" > "$out"/proc/$n/comm;;
	esac
done
if [[ -d /etc/cni/net.d ]]; then
	for f in /etc/cni/net.d/*; do [[ -f $f ]] && : > "$out/rootfs/etc/cni/net.d/$(basename "$f")"; done
fi
ip -d -j link show > "$out"/netlink/links.json
ip -j route show > "$out"/netlink/routes.json
ip -6 -j route show > "$out"/netlink/routes6.json 2>/dev/null || rm -f "$out"/netlink/routes6.json
for dev in $(ip -j link show | python3 -c 'import json,sys; print(" ".join(l["ifname"] for l in json.load(sys.stdin)))'); do
	ethtool -k "$dev" > "$out/ethtool/$dev.txt" 2>/dev/null || rm -f "$out/ethtool/$dev.txt"
	ethtool -l "$dev" > "$out/ethtool/$dev.channels.txt" 2>/dev/null || rm -f "$out/ethtool/$dev.channels.txt"
	# The device's interrupts: its MSI vectors (a virtio device's are its
	# parent's) and where each is delivered.
	for msi in /sys/class/net/"$dev"/device/msi_irqs "$(readlink -f /sys/class/net/"$dev"/device 2>/dev/null)/../msi_irqs"; do
		[[ -d $msi ]] || continue
		mkdir -p "$out/sys/class/net/$dev/device/msi_irqs"
		for irq in "$msi"/*; do
			n=$(basename "$irq")
			: > "$out/sys/class/net/$dev/device/msi_irqs/$n"
			mkdir -p "$out/proc/irq/$n"
			for f in effective_affinity_list smp_affinity_list; do
				cp /proc/irq/"$n"/$f "$out/proc/irq/$n/" 2>/dev/null || true
			done
		done
		break
	done
	for q in /sys/class/net/"$dev"/queues/rx-*; do
		[[ -e $q/rps_cpus ]] || continue
		mkdir -p "$out/sys/class/net/$dev/queues/$(basename "$q")"
		cp "$q"/rps_cpus "$out/sys/class/net/$dev/queues/$(basename "$q")/"
	done
done
if mode=$(curl -fsS --max-time 1 http://127.0.0.1:10249/proxyMode 2>/dev/null); then
	mkdir -p "$out"/kube-proxy
	echo "$mode" > "$out"/kube-proxy/proxyMode
	curl -fsS --max-time 2 http://127.0.0.1:10249/metrics > "$out"/kube-proxy/metrics || true
	curl -fsS --max-time 2 http://127.0.0.1:10249/configz > "$out"/kube-proxy/configz || rm -f "$out"/kube-proxy/configz
fi
echo "captured into $out"
