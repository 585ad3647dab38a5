package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/safchain/ethtool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vishvananda/netns"

	"github.com/nodetune/nodetune/probes"
)

// globals are the flags every command shares.
type globals struct {
	paths     probes.Paths
	kubeProxy string
	logLevel  string
	logFormat string
	log       *slog.Logger
	// peerFile is the peer measurement file the peers probe reads, set by
	// the command from its state directory; empty skips the probe.
	peerFile string
	// prober opens the node; tests replace it with a fixture.
	prober func() (*probes.Prober, func(), error)
}

func newGlobals() *globals {
	g := &globals{}
	g.prober = func() (*probes.Prober, func(), error) {
		h, closeHost, err := g.host()
		if err != nil {
			return nil, nil, err
		}
		return probes.NewProber(h), closeHost, nil
	}
	return g
}

func (g *globals) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.paths.ProcFS, "path.procfs", probes.DefaultPaths.ProcFS, "procfs mountpoint")
	fs.StringVar(&g.paths.SysFS, "path.sysfs", probes.DefaultPaths.SysFS, "sysfs mountpoint")
	fs.StringVar(&g.paths.RootFS, "path.rootfs", probes.DefaultPaths.RootFS, "root filesystem mountpoint (for /etc/cni/net.d)")
	fs.StringVar(&g.kubeProxy, "kube-proxy.url", probes.DefaultKubeProxyURL, "kube-proxy metrics address; empty skips kube-proxy")
	fs.StringVar(&g.logLevel, "log.level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&g.logFormat, "log.format", "text", "log format: text or json")
}

func (g *globals) setup(cmd *cobra.Command) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(os.Stderr, opts))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	default:
		return fmt.Errorf("--log.format: want text or json, got %q", g.logFormat)
	}
	slog.SetDefault(g.log)
	return nil
}

// host opens the node through the real netlink and ethtool. Links are
// listed by kind (probes.FilteringNetlink), so that the tunnels probe,
// which serve runs on every link notification, does not dump each pod
// veth on the node. The caller calls the returned func to close it.
func (g *globals) host() (*probes.Host, func(), error) {
	nl, err := probes.NewNetlink(netns.None())
	if err != nil {
		return nil, nil, err
	}
	et, err := ethtool.NewEthtool()
	if err != nil {
		nl.Close()
		return nil, nil, fmt.Errorf("opening the ethtool socket: %w", err)
	}
	h, err := probes.NewHost(g.paths, nl, et)
	if err != nil {
		et.Close()
		nl.Close()
		return nil, nil, err
	}
	h.KubeProxyURL = g.kubeProxy
	h.Capture = probes.AFPacket{}
	h.NodeName = os.Getenv("NODE_NAME")
	h.PeerFile = g.peerFile
	return h, func() { et.Close(); nl.Close() }, nil
}
