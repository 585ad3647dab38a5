package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// startTimeout bounds how long etcd and kube-apiserver may take to become
// ready; a loaded 2-core machine needs about 15 seconds.
const startTimeout = 90 * time.Second

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Dir holds the certificates, tokens, logs and etcd's data.
	Dir string
	// URL is the API server's address, https://127.0.0.1:PORT.
	URL string
	// CAData is the PEM bundle that verifies the API server's certificate.
	CAData []byte
	// AdminToken authenticates as a member of system:masters.
	AdminToken string
	// Admin is a client with every permission.
	Admin kubernetes.Interface

	procs []*proc
	// admin is the kubeconfig Kubectl uses, in Dir: one per cluster, so
	// that a test binary that starts several (ForTest) reaches each.
	admin adminKubeconfig
	// netns and dial: see Options.
	netns string
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Options place the cluster. The zero value runs etcd and kube-apiserver
// on the loopback of the caller's network namespace.
type Options struct {
	// NetNS is the path of a network namespace (/run/netns/NAME) to run
	// etcd and kube-apiserver in, as nsenter enters it (the mount
	// namespace stays the caller's).
	NetNS string
	// Dial reaches addresses inside NetNS; the cluster's clients and its
	// readiness check use it. Required with NetNS.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Address is the IPv4 address the API server listens on and
	// advertises (default 127.0.0.1). Its serving certificate is valid for
	// it, for 127.0.0.1 and for 10.96.0.1, the ClusterIP of the kubernetes
	// Service, through which pods reach the API server.
	Address string
}

// proc is a program the cluster started; done closes when it exits.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts etcd and kube-apiserver on free loopback ports and waits
// until the API server is ready. Stop stops them and removes Dir.
func Start(ctx context.Context) (c *Cluster, err error) {
	return StartWith(ctx, Options{})
}

// StartWith is Start with the cluster placed as o says.
func StartWith(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Address == "" {
		o.Address = "127.0.0.1"
	}
	addr := net.ParseIP(o.Address).To4()
	if addr == nil {
		return nil, fmt.Errorf("kubetest: address %q is not an IPv4 address", o.Address)
	}
	if o.NetNS != "" && o.Dial == nil {
		return nil, errors.New("kubetest: a network namespace needs a Dial function")
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, fmt.Errorf("creating the cluster directory: %w", err)
	}
	c = &Cluster{Dir: dir, AdminToken: randomToken(), netns: o.NetNS, dial: o.Dial}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	apiserver, err := lookTool("kube-apiserver")
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}
	etcd, err := lookTool("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if err := c.writeSecrets(addr); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.path("admission.yaml"), []byte(admissionConfig), 0o600); err != nil {
		return nil, fmt.Errorf("writing the admission configuration: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := c.start("etcd", etcd,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--logger=zap", "--log-level=warn",
	); err != nil {
		return nil, err
	}
	c.URL = "https://" + o.Address + ":" + strconv.Itoa(ports[2])
	if err := c.start("kube-apiserver", apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address="+o.Address,
		"--advertise-address="+o.Address,
		"--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+c.path("serving.crt"),
		"--tls-private-key-file="+c.path("serving.key"),
		"--token-auth-file="+c.path("tokens.csv"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.path("sa.key"),
		"--service-account-signing-key-file="+c.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		// A test node's kubelet (internal/nodetest) is reached at its IP
		// for logs and exec: its host name resolves nowhere.
		"--kubelet-preferred-address-types=InternalIP",
		"--authorization-mode=RBAC",
		"--admission-control-config-file="+c.path("admission.yaml"),
		"--cert-dir="+c.path("certs"),
		"--v=0",
	); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	c.Admin, err = kubernetes.NewForConfig(c.Config(c.AdminToken))
	if err != nil {
		return nil, fmt.Errorf("creating the admin client: %w", err)
	}
	return c, nil
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

// admissionConfig admits pods of the system-*-critical priority classes
// only in namespaces with a ResourceQuota of that scope, as GKE and other
// managed clusters configure their API servers (Kubernetes' "limit priority
// class consumption by default"), so tests see the stricter behaviour.
const admissionConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ResourceQuota
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: ResourceQuotaConfiguration
      limitedResources:
        - resource: pods
          matchScopes:
            - scopeName: PriorityClass
              operator: In
              values: [system-node-critical, system-cluster-critical]
`

// serviceIP is the ClusterIP of the kubernetes Service: the first address
// of --service-cluster-ip-range.
var serviceIP = net.IPv4(10, 96, 0, 1)

// writeSecrets generates the serving certificate (for addr, 127.0.0.1
// and the kubernetes Service's ClusterIP), the service-account signing key
// and the admin's static token.
func (c *Cluster) writeSecrets(addr net.IP) error {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), serviceIP}
	if !addr.Equal(ips[0]) {
		ips = append(ips, addr)
	}
	cert, key, err := certutil.GenerateSelfSignedCertKey(addr.String(), ips, []string{"localhost", "kubernetes.default.svc"})
	if err != nil {
		return fmt.Errorf("generating the serving certificate: %w", err)
	}
	c.CAData = cert
	saKey, err := keyutil.MakeEllipticPrivateKeyPEM()
	if err != nil {
		return fmt.Errorf("generating the service-account key: %w", err)
	}
	files := map[string][]byte{
		"serving.crt": cert,
		"serving.key": key,
		"sa.key":      saKey,
		"tokens.csv":  []byte(c.AdminToken + ",kubetest-admin,kubetest-admin,system:masters\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(c.path(name), data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}

// start runs a program with its output in Dir/<name>.log. The process gets
// SIGKILL if the test binary dies first.
func (c *Cluster) start(name, path string, args ...string) error {
	logf, err := os.Create(c.path(name + ".log"))
	if err != nil {
		return fmt.Errorf("creating %s's log: %w", name, err)
	}
	if c.netns != "" {
		args = append([]string{"--net=" + c.netns, "--", path}, args...)
		path = "nsenter"
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	logf.Close()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

// waitReady polls /readyz until the API server answers ok, a process
// exits, or startTimeout passes.
func (c *Cluster) waitReady(ctx context.Context) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAData)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: c.dial},
	}
	exited := make(chan string, len(c.procs))
	for _, p := range c.procs {
		go func() {
			<-p.done
			exited <- p.name
		}()
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		resp, err := client.Do(req)
		if err == nil {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, lastLines(body.String(), 5))
		} else {
			last = err.Error()
		}
		select {
		case name := <-exited:
			return fmt.Errorf("%s exited before the API server was ready; its log ends:\n%s", name, c.logTail(name))
		case <-ctx.Done():
			return fmt.Errorf("the API server was not ready within %s (last answer: %s); its log ends:\n%s",
				startTimeout, last, c.logTail("kube-apiserver"))
		case <-tick.C:
		}
	}
}

// logTail returns the end of a program's log.
func (c *Cluster) logTail(name string) string {
	b, err := os.ReadFile(c.path(name + ".log"))
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), 20)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops kube-apiserver, then etcd, and removes Dir.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	c.procs = nil
	os.RemoveAll(c.Dir)
}

// Config returns a client configuration that authenticates with token.
func (c *Cluster) Config(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData},
		QPS:             100,
		Burst:           200,
		Dial:            c.dial,
	}
}

// Kubeconfig writes a kubeconfig file into dir that reaches the API server
// at server (c.URL when empty) with token, and returns its path.
func (c *Cluster) Kubeconfig(dir, server, token string) (string, error) {
	if server == "" {
		server = c.URL
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest"}
	cfg.CurrentContext = "kubetest"
	p := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		return "", fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return p, nil
}
