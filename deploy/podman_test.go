package deploy_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// podman runs Debian's podman with the options every call needs: no
// systemd here (events to a file, cgroupfs).
func podman(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(privtest.Tool(t, "podman"), append([]string{"--events-backend=file", "--cgroup-manager=cgroupfs"}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// loadImage loads an OCI archive into podman's store and removes the
// image when t ends.
func loadImage(t *testing.T, archive, ref string) {
	t.Helper()
	if out, err := podman(t, "load", "--quiet", "--input", archive); err != nil {
		t.Fatalf("podman load %s: %v\n%s", archive, err, out)
	}
	t.Cleanup(func() {
		if out, err := podman(t, "rmi", "--force", ref); err != nil {
			t.Errorf("podman rmi %s: %v\n%s", ref, err, out)
		}
	})
}

// runAsPod translates the rendered DaemonSet's pod into `podman run`
// arguments, without leaving anything out that podman can express: the
// host network (here the network namespace netns), the user and group,
// the capabilities, no_new_privs, the read-only root (without the tmpfs
// mounts podman adds for it and Kubernetes does not), the seccomp
// profile, every hostPath mount (read-only or not, as the manifest says,
// with the paths in hostPaths substituted), the environment (downward API
// fields from downward) and the arguments with $(VAR) expanded as the
// kubelet expands them. It fails t on anything it cannot translate.
func runAsPod(t *testing.T, ds *appsv1.DaemonSet, name, netns string, hostPaths, downward map[string]string) []string {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers; the translation handles one", len(spec.Containers))
	}
	c := spec.Containers[0]
	args := []string{"run", "--detach", "--name", name, "--pull=never"}
	if !spec.HostNetwork {
		t.Fatal("the pod is not on the host network; the translation handles only that")
	}
	args = append(args, "--network=ns:"+netns)
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("no container security context")
	}
	if sc.RunAsUser != nil {
		user := strconv.FormatInt(*sc.RunAsUser, 10)
		if sc.RunAsGroup != nil {
			user += ":" + strconv.FormatInt(*sc.RunAsGroup, 10)
		}
		args = append(args, "--user="+user)
	}
	if sc.Capabilities != nil {
		for _, d := range sc.Capabilities.Drop {
			args = append(args, "--cap-drop="+string(d))
		}
		for _, a := range sc.Capabilities.Add {
			args = append(args, "--cap-add="+string(a))
		}
	}
	if sc.Privileged != nil && *sc.Privileged {
		args = append(args, "--privileged")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt=no-new-privileges")
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		args = append(args, "--read-only", "--read-only-tmpfs=false")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && spec.SecurityContext != nil {
		seccomp = spec.SecurityContext.SeccompProfile
	}
	switch {
	case seccomp == nil || seccomp.Type == corev1.SeccompProfileTypeUnconfined:
		// The kubelet's default is Unconfined.
		args = append(args, "--security-opt=seccomp=unconfined")
	case seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault:
		// podman's default profile is its RuntimeDefault.
	default:
		t.Fatalf("seccomp profile %s: not translated", seccomp.Type)
	}
	args = append(args, ulimits(t)...)
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if ok && v.Secret != nil {
			// The peer token Secret, as the kubelet projects it.
			args = append(args, fmt.Sprintf("--mount=type=bind,source=%s,destination=%s,ro=true", secretDir(t, v.Secret), m.MountPath))
			continue
		}
		if ok && v.EmptyDir != nil {
			// The pod's own scratch directory, writable by everyone as
			// the kubelet makes it, and of the size it asks.
			opt := "--mount=type=tmpfs,destination=" + m.MountPath + ",tmpfs-mode=1777"
			if v.EmptyDir.SizeLimit != nil {
				opt += ",tmpfs-size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
			}
			args = append(args, opt)
			continue
		}
		if !ok || v.HostPath == nil {
			t.Fatalf("mount %s: volume %s is not a hostPath, an emptyDir or the peer Secret", m.MountPath, m.Name)
		}
		src := v.HostPath.Path
		if sub, ok := hostPaths[src]; ok {
			src = sub
		}
		if v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathDirectoryOrCreate {
			if err := os.MkdirAll(src, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		opt := fmt.Sprintf("--mount=type=bind,source=%s,destination=%s", src, m.MountPath)
		if m.ReadOnly {
			opt += ",ro=true"
		}
		args = append(args, opt)
	}
	env := containerEnv(t, c, downward)
	for k, v := range env {
		args = append(args, "--env="+k+"="+v)
	}
	if len(c.Command) > 0 {
		args = append(args, "--entrypoint="+c.Command[0])
	}
	args = append(args, imageFor(c))
	if len(c.Command) > 1 {
		args = append(args, c.Command[1:]...)
	}
	return append(args, expandArgs(c, env)...)
}

// ulimits are podman's --ulimit options for the test's containers.
func ulimits(t *testing.T) []string {
	t.Helper()
	var args []string
	// A machine's hard limits may be below podman's defaults, which runc
	// then fails to set (without CAP_SYS_RESOURCE). Ask for no more than
	// the test process has, and for nproc no more than 32768: on a
	// sandboxed test machine runc could not set the test's own nproc limit.
	for _, l := range []struct {
		name string
		res  int
		max  uint64
	}{{"nofile", syscall.RLIMIT_NOFILE, 1 << 20}, {"nproc", unix.RLIMIT_NPROC, 32768}} {
		var r syscall.Rlimit
		if err := syscall.Getrlimit(l.res, &r); err != nil {
			t.Fatal(err)
		}
		n := min(r.Max, l.max)
		args = append(args, fmt.Sprintf("--ulimit=%s=%d:%d", l.name, n, n))
	}
	return args
}

// TestImagePrivileges runs the image that `make image` builds with podman
// under each rendered DaemonSet's exact security context, on the host
// network of a testbed namespace, and reads the running agent's
// credentials and mounts from the host (/proc/PID/status and mountinfo):
// they must be what docs/deploy.md promises, and the agent must answer
// /healthz on the address the manifest gives.
func TestImagePrivileges(t *testing.T) {
	imgs := buildImages(t)
	promises := docPromises(t)
	vs := render(t)
	removePodmanCgroups(t)
	loadImage(t, imgs.Nodetune, testImage)
	loadImage(t, imgs.Modules, testModulesImage)
	bed := testbedtest.New(t, testbed.Options{Prefix: "ntpm"})
	side := bed.A
	modules := "/lib/modules"
	if _, err := os.Stat(modules); err != nil {
		modules = t.TempDir() // a kernel without modules; the mount is still made
	}
	// The modules variant's modprobe (the build machine's kmod with the
	// libraries it links) runs inside the image.
	run := append(append([]string{"run", "--rm", "--pull=never", "--network=none"}, ulimits(t)...),
		"--entrypoint=/usr/sbin/modprobe", testModulesImage, "--version")
	if out, err := podman(t, run...); err != nil || !strings.Contains(out, "kmod version") {
		t.Errorf("modprobe --version in %s: %v\n%s", testModulesImage, err, out)
	}
	for _, name := range []string{"observe", "remediate", "remediate-load-modules"} {
		t.Run(name, func(t *testing.T) {
			p, ok := promises[name]
			if !ok {
				t.Fatalf("docs/deploy.md promises nothing for %s", name)
			}
			ds := vs[name].daemonSet(t)
			ctr := fmt.Sprintf("nodetune-test-%d-%s", os.Getpid(), name)
			args := runAsPod(t, ds, ctr, "/run/netns/"+side.NS,
				map[string]string{"/var/lib/nodetune": filepath.Join(t.TempDir(), "state"), "/lib/modules": modules},
				map[string]string{"spec.nodeName": "podman-node", "status.hostIP": side.UnderlayIP.String()})
			if out, err := podman(t, args...); err != nil {
				t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			t.Cleanup(func() {
				if t.Failed() {
					out, _ := podman(t, "logs", ctr)
					t.Logf("the agent's log:\n%s", out)
				}
				if out, err := podman(t, "rm", "--force", "--time=5", ctr); err != nil {
					t.Errorf("podman rm %s: %v\n%s", ctr, err, out)
				}
			})
			waitFor(t, "the agent answers /healthz", func() error {
				return get(side, "http://"+side.UnderlayIP.String()+":9848/healthz")
			})
			out, err := podman(t, "inspect", "--format={{.State.Pid}}", ctr)
			if err != nil {
				t.Fatalf("podman inspect: %v\n%s", err, out)
			}
			pid, err := strconv.Atoi(out)
			if err != nil || pid <= 0 {
				t.Fatalf("podman inspect: pid %q", out)
			}
			c, err := readCreds(pid)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: uid %d, CapEff %016x, CapBnd %016x, NoNewPrivs %v, Seccomp %d", name, c.UID, c.CapEff, c.CapBnd, c.NoNewPrivs, c.Seccomp)
			for _, b := range p.check(c) {
				t.Error(b)
			}
			checkContainerMounts(t, pid, ds.Spec.Template.Spec.Containers[0], p.readOnlyRoot)
			checkPeerPrivilege(t, side, name != "observe")
		})
	}
}

// checkContainerMounts checks, in the mount namespace of process pid,
// that the root is read-only when promised and that each volume is
// mounted read-only exactly when the manifest says so.
func checkContainerMounts(t *testing.T, pid int, c corev1.Container, readOnlyRoot bool) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := mountOptions(f)
	if err != nil {
		t.Fatal(err)
	}
	ro := func(p string) bool { return len(opts[p]) > 0 && opts[p][0] == "ro" }
	if ro("/") != readOnlyRoot {
		t.Errorf("the container's root has options %v; read-only promised: %v", opts["/"], readOnlyRoot)
	}
	for _, m := range c.VolumeMounts {
		if _, ok := opts[m.MountPath]; !ok {
			t.Errorf("%s is not mounted in the container", m.MountPath)
		} else if ro(m.MountPath) != m.ReadOnly {
			t.Errorf("%s has options %v; the manifest says read-only %v", m.MountPath, opts[m.MountPath], m.ReadOnly)
		}
	}
}

// get GETs url from inside side's namespace and wants 200.
func get(side *testbed.Side, url string) error {
	_, err := fetch(side, url)
	return err
}

// fetch GETs url from inside side's namespace and returns the body of a
// 200 answer.
func fetch(side *testbed.Side, url string) (string, error) {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       side.DialContext,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

// waitFor calls fn until it succeeds, for up to a minute.
func waitFor(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// removePodmanCgroups removes, when t ends, the parent cgroups that podman
// (with cgroupfs) creates in every hierarchy and leaves behind, unless
// they were there before t. rmdir refuses a cgroup that is in use.
func removePodmanCgroups(t *testing.T) {
	t.Helper()
	before, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent")
	if len(before) != 0 {
		return
	}
	t.Cleanup(func() {
		after, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent")
		for _, root := range after {
			var dirs []string // parents first; removed deepest first
			_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := syscall.Rmdir(dirs[i]); err != nil {
					t.Errorf("removing podman's cgroup %s: %v", dirs[i], err)
				}
			}
		}
	})
}
