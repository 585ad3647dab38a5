package tune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/probes"
	"github.com/nodetune/nodetune/rules"
)

// Module values.
const (
	moduleLoaded   = "loaded"
	moduleUnloaded = "unloaded"
)

// moduleKept is why rollback leaves a module nodetune loaded in place:
// loading is irreversible, since kube-proxy in IPVS mode may use it by then.
const moduleKept = "left loaded: unloading could break kube-proxy"

// vetModule checks a module change: only loading one of the modules
// kube-proxy's IPVS mode needs.
func vetModule(s *detect.Snapshot, c *Change) Refusal {
	if !slices.Contains(detect.IPVSModuleNames, c.Target) {
		return refuse(ReasonAllowlist, "kernel module %q is not on nodetune's allowlist", c.Target)
	}
	if c.To != moduleLoaded {
		return refuse(ReasonAllowlist, "nodetune only loads modules; %q is not %q", c.To, moduleLoaded)
	}
	c.From = moduleUnloaded
	if s.KubeProxy.IPVSModules[c.Target] {
		c.From = moduleLoaded
	}
	return Refusal{}
}

func validModule(name string) error {
	if !slices.Contains(detect.IPVSModuleNames, name) {
		return fmt.Errorf("kernel module %s: %w", name, ErrNotAllowed)
	}
	return nil
}

// readModule reports whether the kernel has the module, loaded or built
// in, read as the probes read it (probes.ReadModules).
func (h *Host) readModule(k Key) (Value, error) {
	if err := validModule(k.Target); err != nil {
		return Value{}, err
	}
	m, err := probes.ReadModules(probes.Paths{ProcFS: h.ProcFS, SysFS: h.SysFS, RootFS: h.rootFS()}, []string{k.Target})
	if err != nil {
		return Value{}, err
	}
	if m.Has(k.Target) {
		return Value{Set: moduleLoaded, Effective: moduleLoaded}, nil
	}
	return Value{Set: moduleUnloaded, Effective: moduleUnloaded}, nil
}

// moduleWritable says whether this host can load modules at all: a kernel
// built without module support has no <procfs>/modules, and one that has
// locked module loading has kernel.modules_disabled at 1.
func (h *Host) moduleWritable(ctx context.Context, k Key) error {
	if err := validModule(k.Target); err != nil {
		return err
	}
	notHere := func(why string) error {
		return fmt.Errorf("loading kernel module %s is not possible here: %s: %w", k.Target, why, detect.ErrNotSupported)
	}
	if _, err := os.Stat(filepath.Join(h.ProcFS, "modules")); errors.Is(err, os.ErrNotExist) {
		return notHere("this kernel has no loadable module support (no /proc/modules)")
	} else if err != nil {
		return classify("checking module support", err)
	}
	b, err := os.ReadFile(filepath.Join(h.ProcFS, "sys/kernel/modules_disabled"))
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return notHere("module loading is disabled (kernel.modules_disabled = 1)")
	}
	if _, err := h.modprobe(); err != nil {
		return notHere(err.Error())
	}
	return nil
}

func (h *Host) modprobe() (string, error) {
	if h.Modprobe != "" {
		return h.Modprobe, nil
	}
	p, err := exec.LookPath("modprobe")
	if err != nil {
		return "", fmt.Errorf("modprobe is not installed: %w", err)
	}
	return p, nil
}

func (h *Host) writeModule(ctx context.Context, k Key, value string) error {
	if err := h.moduleWritable(ctx, k); err != nil {
		return err
	}
	prog, err := h.modprobe()
	if err != nil {
		return err
	}
	args := []string{"--", k.Target}
	switch value {
	case moduleLoaded:
	case moduleUnloaded:
		return fmt.Errorf("kernel module %s: nodetune never unloads modules: %s: %w", k.Target, moduleKept, ErrNotAllowed)
	default:
		return fmt.Errorf("kernel module %s: value %q is not %s", k.Target, value, moduleLoaded)
	}
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// moduleKind is a kernel module, loaded through modprobe and never
// unloaded; values are "loaded" and "unloaded". It is global to the host.
type moduleKind struct{ h *Host }

func (moduleKind) Name() string                              { return rules.ChangeModule }
func (moduleKind) Vet(s *detect.Snapshot, c *Change) Refusal { return vetModule(s, c) }
func (moduleKind) Equal(a, b string) bool                    { return a == b }
func (moduleKind) Irreversible() string                      { return moduleKept }
func (moduleKind) PerNetNS() bool                            { return false }
func (moduleKind) Stepwise() bool                            { return false }

// Command is modprobe for loading; unloading is no command nodetune gives,
// since it never does it.
func (moduleKind) Command(k Key, value string) string {
	if value != moduleLoaded {
		return ""
	}
	return ruleCommand(k, value)
}

func (m moduleKind) Read(ctx context.Context, k Key) (Value, error) {
	h, err := hostOf(m.h)
	if err != nil {
		return Value{}, err
	}
	return h.readModule(k)
}

func (m moduleKind) Writable(ctx context.Context, k Key) error {
	h, err := hostOf(m.h)
	if err != nil {
		return err
	}
	return h.moduleWritable(ctx, k)
}

func (m moduleKind) Write(ctx context.Context, k Key, value string) error {
	h, err := hostOf(m.h)
	if err != nil {
		return err
	}
	return h.writeModule(ctx, k, value)
}
