package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodetune/nodetune/internal/privtest"
)

// TestRestoreHostAfterKilledRun leaves what a killed node leaves (changed
// global sysctls with their record, a process naming a node directory, a
// kubepods cgroup with a process in it) and checks that the sweep a new
// node starts with puts all of it back.
func TestRestoreHostAfterKilledRun(t *testing.T) {
	privtest.Root(t)
	privtest.LockGlobal(t)
	if _, err := os.Stat(sysctlsFile); err == nil {
		t.Fatalf("%s exists: a killed node's record, which this test would overwrite", sysctlsFile)
	}
	if len(cgroupRoots()) != 0 {
		t.Fatalf("the test kubelet's cgroups exist (%v): a node is running or was killed", cgroupRoots())
	}
	const key = "vm/overcommit_memory"
	orig, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile("/proc/sys/"+key, orig, 0o644) }) // if the sweep fails
	if err := saveSysctls(); err != nil {
		t.Fatal(err)
	}
	changed := "1"
	if strings.TrimSpace(string(orig)) == "1" {
		changed = "0"
	}
	if err := os.WriteFile("/proc/sys/"+key, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	// A shim of the killed node: its command line names the node's directory.
	shim := exec.Command("sh", "-c", "sleep 300", filepath.Join(os.TempDir(), workPrefix+"killed", "containerd.sock"))
	if err := shim.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = shim.Wait(); close(done) }()
	t.Cleanup(func() { _ = shim.Process.Kill() })
	// A pod's process in a kubepods cgroup below the test kubelet's root.
	if err := makeCgroupRoot(); err != nil {
		t.Fatal(err)
	}
	cg := "/sys/fs/cgroup/pids/" + cgroupRoot + "/kubepods/besteffort/podkilled"
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil {
		cg = "/sys/fs/cgroup/" + cgroupRoot + "/kubepods/besteffort/podkilled" // cgroup v2
	}
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	// A real kubelet's pod on the same machine, in its /kubepods: the
	// sweep leaves it alone.
	hier := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(hier); err != nil {
		hier = "/sys/fs/cgroup" // cgroup v2
	}
	if _, err := os.Stat(filepath.Join(hier, "kubepods")); err == nil {
		t.Fatalf("%s/kubepods exists: a kubelet runs on this machine", hier)
	}
	other := filepath.Join(hier, "kubepods/besteffort/podreal")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []string{other, filepath.Dir(other), filepath.Dir(filepath.Dir(other))} {
			_ = syscall.Rmdir(d)
		}
	})
	bystander := exec.Command("sleep", "300")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }) // before its cgroup is removed
	if err := os.WriteFile(filepath.Join(other, "cgroup.procs"), []byte(strconv.Itoa(bystander.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeCgroups() })
	pod := exec.Command("sleep", "300")
	if err := pod.Start(); err != nil {
		t.Fatal(err)
	}
	podDone := make(chan struct{})
	go func() { _ = pod.Wait(); close(podDone) }()
	t.Cleanup(func() { _ = pod.Process.Kill() })
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pod.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := restoreHost(); err != nil {
		t.Fatalf("restoreHost: %v", err)
	}
	if got, _ := os.ReadFile("/proc/sys/" + key); string(got) != string(orig) {
		t.Errorf("%s is %s after the sweep; was %s", key, strings.TrimSpace(string(got)), strings.TrimSpace(string(orig)))
	}
	if _, err := os.Stat(sysctlsFile); err == nil {
		t.Errorf("the record %s is still there", sysctlsFile)
	}
	for name, ch := range map[string]chan struct{}{"the shim": done, "the pod's process": podDone} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Errorf("%s survived the sweep", name)
		}
	}
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the sweep killed a process of another kubelet's pod: %v", err)
	}
	if roots := cgroupRoots(); len(roots) != 0 {
		t.Errorf("cgroups %v survived the sweep", roots)
	}
	if err := restoreHost(); err != nil {
		t.Errorf("a second sweep, with nothing left: %v", err)
	}
}
