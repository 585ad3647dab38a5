package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodetune/nodetune/testbed"
	"github.com/nodetune/nodetune/testbed/testbedtest"
)

// selfSigned writes a self-signed certificate for ip and its key into
// dir, and returns their paths.
func selfSigned(t *testing.T, dir string, ip net.IP) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nodetune-peer-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{ip}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestPeerTLS: with --peer.web.config.file (exporter-toolkit's web
// configuration, as for /metrics) the responder speaks TLS only; a
// measurer with --peer.tls-ca-file measures, one in plain HTTP is refused.
func TestPeerTLS(t *testing.T) {
	bed := testbedtest.New(t, testbed.Options{})
	a, b := bed.A, bed.B
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, b.UnderlayIP.AsSlice())
	webConfig := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, []byte("tls_server_config:\n  cert_file: "+cert+"\n  key_file: "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := writeToken(t, "tls-token")
	startResponder(t, a, b, token, "--peer.web.config.file="+webConfig)

	res, r := peerBench(t, a, b, token, "--peer.tls-ca-file", cert, "--peer.cases", "host", "--direction", "send")
	expectCode(t, r, exitOK, "bench --peer over TLS")
	if len(res.Cases) != 1 || res.Cases[0].Err.Failed() || res.Cases[0].BitsPerSecond <= 0 {
		t.Errorf("over TLS: %+v", res.Cases)
	}
	_, r = peerBench(t, a, b, token, "--peer.cases", "host", "--direction", "send")
	if r.code != exitFailure || !strings.Contains(r.out, "HTTP 400") {
		t.Errorf("plain HTTP to the TLS port: exit %d, want %d with the server's HTTP 400:\n%s", r.code, exitFailure, r.out)
	}
}
