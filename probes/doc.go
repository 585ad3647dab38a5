// Package probes reads the host: procfs, sysfs, netlink, ethtool ioctls and
// kube-proxy's local port. It is the only package that does read I/O. Each
// probe fills its part of a detect.Snapshot, or records why it could not;
// probes never judge and never log.
package probes
