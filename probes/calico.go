package probes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// Ownership reads who else sets the node's network settings: offload
// files, how Calico was installed, and the node's name.
func (h *Host) Ownership() detect.Ownership {
	var o detect.Ownership
	files, err := h.OffloadFiles()
	o.OffloadFiles, o.FilesErr = files, detect.Fail(err)
	var names []nodeNameSign
	o.Calico, names = h.calico()
	if h.NodeName != "" {
		names = append(names, nodeNameSign{h.NodeName, "$NODE_NAME"})
	}
	if b, err := h.readRoot("/etc/hostname"); err == nil {
		names = append(names, nodeNameSign{strings.ToLower(strings.TrimSpace(string(b))),
			"/etc/hostname (the kubelet's default node name)"})
	}
	for _, n := range names {
		if n.name != "" && isDNS1123Subdomain(n.name) {
			o.NodeName, o.NodeNameSource = n.name, n.source
			break
		}
	}
	return o
}

type nodeNameSign struct{ name, source string }

// readRoot reads a small file under the root filesystem.
func (h *Host) readRoot(hostPath string) ([]byte, error) {
	return readRegular(filepath.Join(h.RootFS, hostPath), hostPath, maxOwnerFileBytes)
}

// calico reads the signs of how Calico was installed, and the node names
// Calico's files give, most trusted first.
func (h *Host) calico() (detect.Calico, []nodeNameSign) {
	var c detect.Calico
	var names []nodeNameSign
	signs, confName := h.calicoCNIConfig()
	var env map[string]string
	var err error
	if _, serr := os.Stat(filepath.Join(h.RootFS, "/var/lib/calico")); serr != nil && len(signs) == 0 && confName.name == "" {
		// No Calico here: spare the walk through every process.
		err = fmt.Errorf("no Calico on this node (no /var/lib/calico, no Calico CNI config): %w", detect.ErrNotSupported)
	} else {
		env, err = h.calicoNodeEnv()
	}
	c.EnvErr = detect.Fail(err)
	if err == nil {
		if ct, ok := env["CLUSTER_TYPE"]; ok {
			install := detect.CalicoManifest
			if strings.Contains(","+ct+",", ",operator,") {
				install = detect.CalicoOperator
			}
			c.Signs = append(c.Signs, detect.CalicoSign{Install: install, Evidence: "calico-node's CLUSTER_TYPE is " + ct})
		}
		c.Namespace = env["NAMESPACE"]
		c.EnvOverride, c.EnvOverrideSet = env["FELIX_FEATUREDETECTOVERRIDE"]
		names = append(names, nodeNameSign{env["NODENAME"], "calico-node's NODENAME"})
	}
	if b, err := h.readRoot("/var/lib/calico/nodename"); err == nil {
		names = append(names, nodeNameSign{strings.TrimSpace(string(b)), "Calico's /var/lib/calico/nodename"})
	}
	c.Signs = append(c.Signs, signs...)
	if confName.name != "" {
		names = append(names, confName)
	}
	podSigns, ns := h.calicoPods()
	c.Signs = append(c.Signs, podSigns...)
	if c.Namespace == "" {
		c.Namespace = ns
	}
	return c, names
}

// calicoEnvKeys are the only variables nodetune keeps from calico-node's
// environment; the rest may hold secrets and is never stored.
var calicoEnvKeys = []string{"CLUSTER_TYPE", "NAMESPACE", "NODENAME", "FELIX_FEATUREDETECTOVERRIDE"}

// calicoNodeEnv reads the calico-node process's environment. It takes
// root with CAP_SYS_PTRACE; without, the error wraps detect.ErrPermission.
func (h *Host) calicoNodeEnv() (map[string]string, error) {
	procs, err := h.proc.AllProcs()
	if err != nil {
		return nil, detect.Classify("listing processes", err)
	}
	var lastErr error
	for _, p := range procs {
		comm, err := p.Comm()
		if err != nil || comm != detect.ProcCalicoNode {
			continue
		}
		vars, err := p.Environ()
		if err != nil {
			lastErr = detect.Classify("reading calico-node's environment", err)
			continue
		}
		env := map[string]string{}
		for _, kv := range vars {
			k, v, _ := strings.Cut(kv, "=")
			for _, want := range calicoEnvKeys {
				if k == want {
					env[k] = v
				}
			}
		}
		return env, nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("calico-node is not running here: %w", detect.ErrNotSupported)
}

// calicoCNIConfig reads Calico's CNI config in /etc/cni/net.d. The
// calico.yaml manifest's template has a "nodename" field, filled in with
// the node's name; the tigera-operator renders the config without it, with
// "nodename_file_optional" and "container_settings" instead.
func (h *Host) calicoCNIConfig() ([]detect.CalicoSign, nodeNameSign) {
	dir := "/etc/cni/net.d"
	entries, err := os.ReadDir(filepath.Join(h.RootFS, dir))
	if err != nil {
		return nil, nodeNameSign{}
	}
	var signs []detect.CalicoSign
	var name nodeNameSign
	for _, e := range entries {
		n := e.Name()
		if !strings.Contains(n, "calico") || !(strings.HasSuffix(n, ".conflist") || strings.HasSuffix(n, ".conf")) {
			continue
		}
		b, err := h.readRoot(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		plugin, err := calicoPluginConfig(b)
		if err != nil {
			continue
		}
		if v, ok := plugin["nodename"].(string); ok {
			signs = append(signs, detect.CalicoSign{Install: detect.CalicoManifest,
				Evidence: n + ` has "nodename", a field of the calico.yaml manifest's CNI template`})
			name = nodeNameSign{v, `"nodename" in ` + n}
		}
		_, opt := plugin["nodename_file_optional"]
		_, cs := plugin["container_settings"]
		if opt && cs {
			signs = append(signs, detect.CalicoSign{Install: detect.CalicoOperator,
				Evidence: n + ` has "nodename_file_optional" and "container_settings", which the tigera-operator writes`})
		}
	}
	return signs, name
}

// calicoPluginConfig returns the calico plugin's entry of a CNI config,
// a .conflist or a single .conf.
func calicoPluginConfig(b []byte) (map[string]any, error) {
	var conf struct {
		Type    string           `json:"type"`
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		return nil, err
	}
	for _, p := range conf.Plugins {
		if p["type"] == "calico" {
			return p, nil
		}
	}
	if conf.Type == "calico" {
		var single map[string]any
		err := json.Unmarshal(b, &single)
		return single, err
	}
	return nil, errors.New("no calico plugin")
}

// calicoPods reads the kubelet's pod log directories, named
// <namespace>_<pod>_<uid>, for calico-node and tigera-operator pods.
func (h *Host) calicoPods() ([]detect.CalicoSign, string) {
	entries, err := os.ReadDir(filepath.Join(h.RootFS, "/var/log/pods"))
	if err != nil {
		return nil, ""
	}
	if len(entries) > 4*maxOwnerDirEntries {
		entries = entries[:4*maxOwnerDirEntries]
	}
	var signs []detect.CalicoSign
	ns := ""
	for _, e := range entries {
		parts := strings.SplitN(e.Name(), "_", 3)
		if len(parts) != 3 || !e.IsDir() {
			continue
		}
		where := "/var/log/pods/" + e.Name()
		switch {
		case strings.HasPrefix(parts[1], "calico-node-"):
			ns = parts[0]
			switch parts[0] {
			case "calico-system":
				signs = append(signs, detect.CalicoSign{Install: detect.CalicoOperator, Evidence: "calico-node runs in namespace calico-system (" + where + ")"})
			case "kube-system":
				signs = append(signs, detect.CalicoSign{Install: detect.CalicoManifest, Evidence: "calico-node runs in namespace kube-system (" + where + ")"})
			}
		case strings.HasPrefix(parts[1], "tigera-operator-"):
			signs = append(signs, detect.CalicoSign{Install: detect.CalicoOperator, Evidence: "the tigera-operator runs on this node (" + where + ")"})
		}
	}
	return signs, ns
}
