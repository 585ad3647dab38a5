package nodetest

import (
	"fmt"
	"os"
	"path/filepath"
)

// pauseImage is the sandbox image the node's containerd uses, built from
// ./pause by the harness.
const pauseImage = "localhost/nodetest-pause:1"

// containerdConfig is the node's containerd configuration (config version
// 2, containerd 1.6). Each setting that differs from Debian's default is
// there because the test machine needs it:
//   - every path (root, state, sockets, runc's state) is under dir, so the
//     host's containerd, if any, is untouched;
//   - restrict_oom_score_adj: a process without CAP_SYS_RESOURCE cannot
//     lower oom_score_adj below its own, which runc otherwise tries;
//   - SystemdCgroup = false: no systemd; the kubelet uses cgroupfs too;
//   - sandbox_image: the local pause image; the usual one is in a registry;
//   - the CNI configuration has only the loopback plugin: the node's pods
//     are all on the host network, but the runtime reports the network
//     ready only with some configuration.
func containerdConfig(dir string) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[5]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[6]q
`, filepath.Join(dir, "containerd/root"), filepath.Join(dir, "containerd/state"), socket(dir), pauseImage,
		filepath.Join(dir, "containerd/runc"), filepath.Join(dir, "cni"))
}

// loopbackCNI is the node's only CNI configuration.
const loopbackCNI = `{"cniVersion": "1.0.0", "name": "loopback", "plugins": [{"type": "loopback"}]}`

// socket is containerd's socket.
func socket(dir string) string { return filepath.Join(dir, "containerd/containerd.sock") }

// kubeletConfig is the kubelet's configuration. The settings the test
// machine needs: cgroupDriver cgroupfs (no systemd) and failCgroupV1
// false (the machine has cgroup v1, which kubelet 1.34 refuses by
// default); low eviction thresholds and no swap check, so that a busy
// shared machine does not evict the pods under test. Its API accepts
// anonymous requests (the API server reaches it for `kubectl logs`
// without a client certificate); it listens only inside the node's
// network namespace.
func kubeletConfig(dir string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /%[2]s
failCgroupV1: false
containerRuntimeEndpoint: unix://%[1]s
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
failSwapOn: false
oomScoreAdj: 0
resolvConf: ""
syncFrequency: 5s
nodeStatusUpdateFrequency: 5s
evictionHard: {"memory.available": "50Mi", "nodefs.available": "1%%", "imagefs.available": "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, socket(dir), cgroupRoot)
}

// writeFiles writes name -> content under dir.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
