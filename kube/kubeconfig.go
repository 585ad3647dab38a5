package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"sigs.k8s.io/yaml"
)

// ErrKubeconfigUnsupported means a kubeconfig asks for something nodetune's
// client does not do, such as an exec credential plugin; the error names
// it.
var ErrKubeconfigUnsupported = errors.New("not supported by nodetune")

// kubeconfig is a kubeconfig file (clientcmd's v1 Config), with the fields
// nodetune reads, and those it refuses so that it can name them.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string    `json:"name"`
		Cluster kcCluster `json:"cluster"`
	} `json:"clusters"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	Users []struct {
		Name string `json:"name"`
		User kcUser `json:"user"`
	} `json:"users"`
}

type kcCluster struct {
	Server                   string `json:"server"`
	TLSServerName            string `json:"tls-server-name"`
	InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
	CertificateAuthority     string `json:"certificate-authority"`
	CertificateAuthorityData []byte `json:"certificate-authority-data"`
	ProxyURL                 string `json:"proxy-url"`
}

type kcUser struct {
	ClientCertificate     string          `json:"client-certificate"`
	ClientCertificateData []byte          `json:"client-certificate-data"`
	ClientKey             string          `json:"client-key"`
	ClientKeyData         []byte          `json:"client-key-data"`
	Token                 string          `json:"token"`
	TokenFile             string          `json:"tokenFile"`
	Username              string          `json:"username"`
	Password              string          `json:"password"`
	Impersonate           string          `json:"as"`
	ImpersonateUID        string          `json:"as-uid"`
	ImpersonateGroups     []string        `json:"as-groups"`
	AuthProvider          json.RawMessage `json:"auth-provider"`
	Exec                  json.RawMessage `json:"exec"`
}

// LoadKubeconfig reads the kubeconfig file at path and returns the
// configuration of its current context. Relative file names in it are
// relative to the file's directory, as kubectl reads them.
func LoadKubeconfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKubeconfig(data, filepath.Dir(path))
}

// parseKubeconfig returns the configuration of the current context of the
// kubeconfig data; dir is where its relative file names start.
func parseKubeconfig(data []byte, dir string) (*Config, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	if kc.CurrentContext == "" {
		return nil, errors.New("no current-context")
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("the current-context %q is not among the contexts", kc.CurrentContext)
	}
	var cluster *kcCluster
	for i := range kc.Clusters {
		if kc.Clusters[i].Name == clusterName {
			cluster = &kc.Clusters[i].Cluster
			break
		}
	}
	if cluster == nil {
		return nil, fmt.Errorf("context %q names cluster %q, which is not among the clusters", kc.CurrentContext, clusterName)
	}
	cfg, err := clusterConfig(cluster, dir)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", clusterName, err)
	}
	if userName == "" {
		return cfg, nil // anonymous
	}
	for i := range kc.Users {
		if kc.Users[i].Name == userName {
			if err := userConfig(cfg, &kc.Users[i].User, dir); err != nil {
				return nil, fmt.Errorf("user %q: %w", userName, err)
			}
			return cfg, nil
		}
	}
	return nil, fmt.Errorf("context %q names user %q, which is not among the users", kc.CurrentContext, userName)
}

// clusterConfig is the part of the configuration a kubeconfig cluster
// gives.
func clusterConfig(c *kcCluster, dir string) (*Config, error) {
	if c.Server == "" {
		return nil, errors.New("no server")
	}
	if c.ProxyURL != "" {
		return nil, fmt.Errorf("proxy-url is %w (the proxy environment variables are honoured)", ErrKubeconfigUnsupported)
	}
	cfg := &Config{Host: c.Server, Insecure: c.InsecureSkipTLSVerify, ServerName: c.TLSServerName}
	ca, err := dataOrFile(c.CertificateAuthorityData, c.CertificateAuthority, dir)
	if err != nil {
		return nil, fmt.Errorf("certificate-authority: %w", err)
	}
	if len(ca) > 0 && cfg.Insecure {
		return nil, errors.New("a certificate authority and insecure-skip-tls-verify together: choose one")
	}
	cfg.CAData = ca
	return cfg, nil
}

// userConfig adds a kubeconfig user's credentials to cfg.
func userConfig(cfg *Config, u *kcUser, dir string) error {
	var unsupported []string
	for name, set := range map[string]bool{
		"exec":               len(u.Exec) > 0 && string(u.Exec) != "null",
		"auth-provider":      len(u.AuthProvider) > 0 && string(u.AuthProvider) != "null",
		"username/password":  u.Username != "" || u.Password != "",
		"as (impersonation)": u.Impersonate != "" || u.ImpersonateUID != "" || len(u.ImpersonateGroups) > 0,
	} {
		if set {
			unsupported = append(unsupported, name)
		}
	}
	if len(unsupported) > 0 {
		sort.Strings(unsupported)
		return fmt.Errorf("%v %w: use a token, a tokenFile or a client certificate", unsupported, ErrKubeconfigUnsupported)
	}
	cert, err := dataOrFile(u.ClientCertificateData, u.ClientCertificate, dir)
	if err != nil {
		return fmt.Errorf("client-certificate: %w", err)
	}
	key, err := dataOrFile(u.ClientKeyData, u.ClientKey, dir)
	if err != nil {
		return fmt.Errorf("client-key: %w", err)
	}
	if (len(cert) > 0) != (len(key) > 0) {
		return errors.New("a client certificate needs its key, and a key its certificate")
	}
	cfg.CertData, cfg.KeyData = cert, key
	cfg.BearerToken = u.Token
	if u.TokenFile != "" {
		cfg.BearerTokenFile = resolve(u.TokenFile, dir)
	}
	return nil
}

// dataOrFile returns data, or else the content of the file name (relative
// to dir); both set is an error, as in kubectl.
func dataOrFile(data []byte, name, dir string) ([]byte, error) {
	if len(data) > 0 && name != "" {
		return nil, errors.New("both the file and its -data are set: choose one")
	}
	if name == "" {
		return data, nil
	}
	b, err := os.ReadFile(resolve(name, dir))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// resolve makes a kubeconfig's relative file name relative to its dir.
func resolve(name, dir string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}
