package probes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodetune/nodetune/detect"
)

// maxBody bounds what nodetune reads from kube-proxy: its metrics page is
// tens of kilobytes even on large clusters.
const maxBody = 4 << 20

// KubeProxy asks the local kube-proxy for its mode and sync metrics, and
// reads which IPVS modules are loaded. A kube-proxy that does not answer
// is reported as not running, which is not an error.
func (h *Host) KubeProxy() detect.KubeProxy {
	kp := detect.KubeProxy{NATRules: -1, SyncSeconds: -1, FullSyncSeconds: -1, ConnReuseMode: -1, NFTablesSyncFailuresDelta: -1}
	kp.IPVSModules, kp.ModulesErr = h.ipvsModules()
	if h.KubeProxyURL == "" {
		return kp
	}
	body, err := h.get("/proxyMode")
	if err != nil {
		if !notListening(err) {
			kp.Err = detect.Fail(err)
		}
		return kp
	}
	mode, err := ParseProxyMode(body)
	if err != nil {
		kp.Err = detect.Fail(err)
		return kp
	}
	kp.Running, kp.Mode = true, mode
	h.kubeProxyMetrics(&kp)
	h.kubeProxyConfig(&kp)
	if mode == "ipvs" {
		if v, err := h.Sysctl("net.ipv4.vs.conn_reuse_mode"); err == nil {
			kp.ConnReuseMode = v
		}
	}
	return kp
}

// kubeProxyMetrics reads kube-proxy's /metrics page into kp: rule counts,
// sync histograms and its version. A page without kubernetes_build_info
// leaves the version unknown, and says so.
func (h *Host) kubeProxyMetrics(kp *detect.KubeProxy) {
	page, err := h.get("/metrics")
	if err != nil {
		kp.VersionErr = detect.Fail(err)
		return
	}
	m, err := ParseKubeProxyPage(strings.NewReader(page))
	if err != nil {
		kp.VersionErr = detect.Fail(err)
		return
	}
	kp.NATRules, kp.Syncs, kp.FullSyncs = m.NATRules, m.Syncs, m.FullSyncs
	kp.NFTablesSyncFailures, kp.MetricsRead = m.NFTablesSyncFailures, true
	if mean, ok := kp.Syncs.Mean(detect.SyncHistogram{}); ok {
		kp.SyncSeconds = mean
	}
	if mean, ok := kp.FullSyncs.Mean(detect.SyncHistogram{}); ok {
		kp.FullSyncSeconds = mean
	}
	switch {
	case m.GitVersion == "":
		kp.VersionErr = detect.Fail(fmt.Errorf("kube-proxy's /metrics has no kubernetes_build_info: %w", detect.ErrNotSupported))
	default:
		if kp.Version, err = detect.ParseKubeVersion(m.GitVersion); err != nil {
			kp.VersionErr = detect.Fail(err)
		}
	}
}

// kubeProxyConfig reads kube-proxy's running configuration from /configz,
// which kube-proxy serves on its metrics port.
func (h *Host) kubeProxyConfig(kp *detect.KubeProxy) {
	body, err := h.get("/configz")
	if errors.Is(err, detect.ErrNotSupported) {
		// The address differs from run to run; the reason does not.
		kp.ConfigErr = detect.Fail(fmt.Errorf("kube-proxy serves no /configz: %w", detect.ErrNotSupported))
		return
	}
	if err != nil {
		kp.ConfigErr = detect.Fail(err)
		return
	}
	c, err := ParseKubeProxyConfigz([]byte(body))
	if err != nil {
		kp.ConfigErr = detect.Fail(err)
		return
	}
	kp.Config = &c
}

func (h *Host) get(path string) (string, error) {
	url := strings.TrimRight(h.KubeProxyURL, "/") + path
	// kube-proxy answers in place and never redirects: a redirect is
	// returned as the answer (an HTTP 3xx error below), not followed to
	// wherever it points.
	client := *h.HTTP
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(url)
	if err != nil {
		return "", fmt.Errorf("asking kube-proxy at %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", fmt.Errorf("asking kube-proxy at %s: %w", url, detect.ErrNotSupported)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("asking kube-proxy at %s: HTTP %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("reading kube-proxy's answer from %s: %w", url, err)
	}
	return string(b), nil
}

// notListening reports whether err means nothing answers at kube-proxy's
// address (refused, unreachable, timed out, or no /proxyMode there), which
// is a node without kube-proxy rather than a failure.
func notListening(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrDeadlineExceeded) ||
		detect.Unavailable(err)
}

// ParseProxyMode parses kube-proxy's /proxyMode answer: one word.
func ParseProxyMode(body string) (string, error) {
	mode := strings.TrimSpace(body)
	if mode == "" || len(mode) > 32 || strings.ContainsAny(mode, " \t\n") {
		return "", fmt.Errorf("kube-proxy's /proxyMode answered %q, not a mode", truncate(mode, 40))
	}
	for _, r := range mode {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return "", fmt.Errorf("kube-proxy's /proxyMode answered %q, not a mode", truncate(mode, 40))
		}
	}
	return strings.ToLower(mode), nil
}

// truncate is detect.Truncate.
var truncate = detect.Truncate

// ParseKubeProxyMetrics reads kube-proxy's /metrics page and returns the
// nat table's rule count (-1 when absent) and the rule sync histogram's
// count and sum (zero when absent).
func ParseKubeProxyMetrics(r io.Reader) (natRules int64, syncs detect.SyncHistogram, err error) {
	m, err := ParseKubeProxyPage(r)
	return m.NATRules, m.Syncs, err
}

// KubeProxyMetrics is what nodetune reads from kube-proxy's /metrics page.
type KubeProxyMetrics struct {
	// NATRules is the nat table's rule count (iptables mode), or -1.
	NATRules int64
	// Syncs is the histogram of all rule syncs; FullSyncs that of full
	// syncs only (kubeproxy_sync_full_proxy_rules_duration_seconds,
	// kube-proxy 1.28+). Zero when absent.
	Syncs, FullSyncs detect.SyncHistogram
	// GitVersion is kubernetes_build_info's gitVersion label, or "".
	GitVersion string
	// NFTablesSyncFailures is the count of failed nftables syncs, summed
	// over IP families.
	NFTablesSyncFailures uint64
}

// ParseKubeProxyPage parses kube-proxy's /metrics page.
func ParseKubeProxyPage(r io.Reader) (KubeProxyMetrics, error) {
	m := KubeProxyMetrics{NATRules: -1}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return m, fmt.Errorf("parsing kube-proxy metrics: %w", err)
	}
	m.NATRules, m.Syncs = natRulesAndSyncs(families)
	m.FullSyncs = histogram(families["kubeproxy_sync_full_proxy_rules_duration_seconds"])
	for _, metric := range families["kubeproxy_sync_proxy_rules_nftables_sync_failures_total"].GetMetric() {
		// A page without TYPE lines makes every sample untyped.
		if v := metric.GetCounter().GetValue() + metric.GetUntyped().GetValue(); v > 0 && v < 1<<63 {
			m.NFTablesSyncFailures += uint64(v)
		}
	}
	if mf, ok := families["kubernetes_build_info"]; ok {
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "gitVersion" {
					m.GitVersion = l.GetValue()
				}
			}
		}
	}
	return m, nil
}

// histogram returns the count and sum of mf's histograms, summed over its
// series (one per IP family on a dual-stack kube-proxy).
func histogram(mf *dto.MetricFamily) detect.SyncHistogram {
	var out detect.SyncHistogram
	for _, m := range mf.GetMetric() {
		if h := m.GetHistogram(); h != nil && h.GetSampleSum() >= 0 {
			out.Count += h.GetSampleCount()
			out.SumSeconds += h.GetSampleSum()
		}
	}
	return out
}

func natRulesAndSyncs(families map[string]*dto.MetricFamily) (natRules int64, syncs detect.SyncHistogram) {
	natRules = -1
	if mf, ok := families["kubeproxy_sync_proxy_rules_iptables_total"]; ok {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" && l.GetValue() == "nat" {
					// A page without TYPE lines makes every sample untyped.
					natRules = int64(m.GetGauge().GetValue() + m.GetUntyped().GetValue())
				}
			}
		}
	}
	return natRules, histogram(families["kubeproxy_sync_proxy_rules_duration_seconds"])
}

// configz is the part of kube-proxy's /configz answer nodetune reads. The
// configuration is kube-proxy's internal type, whose fields have no JSON
// names ("Mode", "IPVS"); encoding/json matches names without regard to
// case, so the versioned names ("mode", "ipvs") are read too.
type configz struct {
	Config *struct {
		Mode string `json:"mode"`
		IPVS struct {
			Scheduler string `json:"scheduler"`
		} `json:"ipvs"`
		Conntrack struct {
			MaxPerCore *int32 `json:"maxPerCore"`
			Min        *int32 `json:"min"`
		} `json:"conntrack"`
	} `json:"kubeproxy.config.k8s.io"`
}

// ParseKubeProxyConfigz parses kube-proxy's /configz answer: a JSON object
// whose "kubeproxy.config.k8s.io" member is its configuration.
func ParseKubeProxyConfigz(body []byte) (detect.KubeProxyConfig, error) {
	var c configz
	if err := json.Unmarshal(body, &c); err != nil {
		return detect.KubeProxyConfig{}, fmt.Errorf("parsing kube-proxy's /configz: %w", err)
	}
	if c.Config == nil {
		return detect.KubeProxyConfig{}, fmt.Errorf("kube-proxy's /configz has no kubeproxy.config.k8s.io member")
	}
	return detect.KubeProxyConfig{
		Mode:                c.Config.Mode,
		IPVSScheduler:       c.Config.IPVS.Scheduler,
		ConntrackMaxPerCore: c.Config.Conntrack.MaxPerCore,
		ConntrackMin:        c.Config.Conntrack.Min,
	}, nil
}

// ipvsModules reports which IPVS modules the kernel has, loaded or built in.
func (h *Host) ipvsModules() (map[string]bool, detect.Err) {
	m, err := ReadModules(h.Paths, detect.IPVSModuleNames)
	if err != nil {
		return nil, detect.Fail(err)
	}
	out := make(map[string]bool, len(detect.IPVSModuleNames))
	var unknown []string
	for _, name := range detect.IPVSModuleNames {
		out[name] = m.Has(name)
		if !out[name] {
			unknown = append(unknown, name)
		}
	}
	// ip_vs built in (in /sys/module, for its parameters, but not in
	// /proc/modules) lets its schedulers be built in too, and they show
	// nowhere but in modules.builtin. Without that file, a scheduler not
	// loaded may be built in: unknown. (ip_vs loaded as a module means
	// its schedulers are modules too; no ip_vs at all means none.)
	ipvsBuiltin := m.SysFS[detect.ModuleName("ip_vs")] && !m.Loaded[detect.ModuleName("ip_vs")]
	if m.Builtin == nil && ipvsBuiltin && len(unknown) > 0 {
		return nil, detect.Fail(fmt.Errorf("ip_vs is built into this kernel and the release's modules.builtin was not found, "+
			"so whether %s are built in too cannot be told (/sys/module shows a built-in module only if it has parameters): %w",
			strings.Join(unknown, ", "), detect.ErrNotSupported))
	}
	return out, detect.Err{}
}

// ReadModules reads what the kernel says about its modules, for
// detect.Modules to decide whether it has each of names: <procfs>/modules,
// the release's modules.builtin under the root filesystem, and
// <sysfs>/module/NAME (where a built-in module appears only if it has
// parameters: ip_vs does, its schedulers do not). A kernel without module
// support has no /proc/modules; its modules are all built in or absent.
// tune reads modules back through it too.
func ReadModules(paths Paths, names []string) (detect.Modules, error) {
	var m detect.Modules
	b, err := os.ReadFile(filepath.Join(paths.ProcFS, "modules"))
	if err == nil {
		m.Loaded = detect.ParseModules(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return m, classify("reading /proc/modules", err)
	}
	if m.Builtin, err = builtinModules(paths); err != nil {
		return m, err
	}
	m.SysFS = map[string]bool{}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(paths.SysFS, "module", detect.ModuleName(name))); err == nil {
			m.SysFS[detect.ModuleName(name)] = true
		}
	}
	return m, nil
}

// builtinModules reads the modules built into the running kernel from
// <rootfs>/lib/modules/<release>/modules.builtin, the release read from
// <procfs>/sys/kernel/osrelease. A missing file (no modules installed, or
// the host's root not mounted) gives none.
func builtinModules(paths Paths) (map[string]bool, error) {
	release, err := os.ReadFile(filepath.Join(paths.ProcFS, "sys/kernel/osrelease"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("reading the kernel release for modules.builtin", err)
	}
	rel := detect.BuiltinModulesPath(string(release))
	if rel == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(paths.RootFS, rel))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("reading /"+rel, err)
	}
	return detect.ParseBuiltinModules(string(b)), nil
}
