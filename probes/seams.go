package probes

import (
	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
)

// Netlink is the part of netlink the probes use. *netlink.Handle
// satisfies it; a fake built from `ip -d -j link show` output stands in for
// it in tests.
type Netlink interface {
	LinkList() ([]netlink.Link, error)
	RouteList(link netlink.Link, family int) ([]netlink.Route, error)
}

// Ethtool is the part of ethtool the probes use. *ethtool.Ethtool
// satisfies it; a fake built from `ethtool -k` output stands in for it.
type Ethtool interface {
	FeaturesWithState(dev string) (map[string]ethtool.FeatureState, error)
}

var (
	_ Netlink = (*netlink.Handle)(nil)
	_ Ethtool = (*ethtool.Ethtool)(nil)
)
