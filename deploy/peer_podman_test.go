package deploy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodetune/nodetune/testbed"
)

// podmanPeerToken is the token the test's stand-in for the nodetune-peer
// Secret holds.
const podmanPeerToken = "podman-peer-token"

// secretDir stands in for a Secret volume: a directory with the token,
// readable by the agent's user, as the kubelet's projection is.
func secretDir(t *testing.T, s *corev1.SecretVolumeSource) string {
	t.Helper()
	if s.SecretName != "nodetune-peer" {
		t.Fatalf("Secret volume %s: only the peer token is translated", s.SecretName)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(podmanPeerToken+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// peerCall sends one peer-protocol request to the agent on side's
// underlay address, from side's namespace, and returns the status and
// body.
func peerCall(side *testbed.Side, method, path, body string) (int, string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: side.DialContext}}
	req, err := http.NewRequest(method, "http://"+side.UnderlayIP.String()+":9849"+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+podmanPeerToken)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// checkPeerPrivilege: the agent, under its manifest's exact privileges,
// answers a peer session with the Secret's token, and creates the
// temporary tunnel of the offload cases only where it holds NET_ADMIN
// (remediate); observe refuses it with 403, saying why.
func checkPeerPrivilege(t *testing.T, side *testbed.Side, netAdmin bool) {
	t.Helper()
	var code int
	var body string
	waitFor(t, "the responder answers", func() error {
		var err error
		code, body, err = peerCall(side, http.MethodPost, "/v1/sessions", `{"streams":1,"duration_ms":500,"cases":1}`)
		if err == nil && code != http.StatusCreated {
			err = fmt.Errorf("HTTP %d: %s", code, body)
		}
		return err
	})
	i := strings.Index(body, `"id":"`)
	if i < 0 {
		t.Fatalf("no session id in %s", body)
	}
	id := body[i+6 : i+6+16]
	code, body, err := peerCall(side, http.MethodPost, "/v1/sessions/"+id+"/tunnel",
		`{"kind":"vxlan","mtu":1450,"vni":9849,"port":4790,"subnet":"169.254.100.0/30"}`)
	switch {
	case err != nil:
		t.Fatal(err)
	case netAdmin && code != http.StatusCreated:
		t.Errorf("with NET_ADMIN the temporary tunnel: HTTP %d %s, want 201", code, body)
	case !netAdmin && (code != http.StatusForbidden || !strings.Contains(body, "CAP_NET_ADMIN")):
		t.Errorf("without NET_ADMIN the temporary tunnel: HTTP %d %s, want 403 naming CAP_NET_ADMIN", code, body)
	}
	if code, body, err := peerCall(side, http.MethodDelete, "/v1/sessions/"+id, ""); err != nil || code != http.StatusNoContent {
		t.Errorf("ending the session: HTTP %d %s %v", code, body, err)
	}
	links, err := side.Netlink().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "ntpr-") {
			t.Errorf("%s is left after the session", l.Attrs().Name)
		}
	}
}
