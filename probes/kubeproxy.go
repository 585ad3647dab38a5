package probes

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

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
	kp := detect.KubeProxy{NATRules: -1, SyncSeconds: -1}
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
	if metrics, err := h.get("/metrics"); err == nil {
		kp.NATRules, kp.Syncs, _ = ParseKubeProxyMetrics(strings.NewReader(metrics))
		if mean, ok := kp.Syncs.Mean(detect.SyncHistogram{}); ok {
			kp.SyncSeconds = mean
		}
	}
	return kp
}

func (h *Host) get(path string) (string, error) {
	url := strings.TrimRight(h.KubeProxyURL, "/") + path
	resp, err := h.HTTP.Get(url)
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
		errors.Is(err, detect.ErrNotSupported)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ParseKubeProxyMetrics reads kube-proxy's /metrics page and returns the
// nat table's rule count (-1 when absent) and the rule sync histogram's
// count and sum (zero when absent).
func ParseKubeProxyMetrics(r io.Reader) (natRules int64, syncs detect.SyncHistogram, err error) {
	natRules = -1
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return natRules, syncs, fmt.Errorf("parsing kube-proxy metrics: %w", err)
	}
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
	if mf, ok := families["kubeproxy_sync_proxy_rules_duration_seconds"]; ok {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil && h.GetSampleSum() >= 0 {
				syncs = detect.SyncHistogram{Count: h.GetSampleCount(), SumSeconds: h.GetSampleSum()}
			}
		}
	}
	return natRules, syncs, nil
}

// ipvsModules reports which IPVS modules are loaded (in /proc/modules) or
// built in (present under /sys/module).
func (h *Host) ipvsModules() (map[string]bool, detect.Err) {
	b, err := os.ReadFile(filepath.Join(h.ProcFS, "modules"))
	loaded := map[string]bool{}
	if err == nil {
		loaded = ParseModules(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		// A kernel without module support has no /proc/modules; every
		// module is then built in or absent, which /sys/module tells.
		return nil, fail("reading /proc/modules", err)
	}
	out := make(map[string]bool, len(detect.IPVSModuleNames))
	for _, m := range detect.IPVSModuleNames {
		_, statErr := os.Stat(h.sys("module", m))
		out[m] = loaded[m] || statErr == nil
	}
	return out, detect.Err{}
}

// ParseModules returns the names of the modules in /proc/modules text.
func ParseModules(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if name, _, _ := strings.Cut(line, " "); name != "" {
			out[name] = true
		}
	}
	return out
}
