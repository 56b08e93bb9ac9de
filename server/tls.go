package server

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DevCertificate returns a self-signed ECDSA P-256 certificate for localhost and the
// loopback addresses, valid for 30 days, and its SHA-256 fingerprint (hex).
func DevCertificate() (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("dev key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("dev serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "id4me-registry dev"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("dev certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, hex.EncodeToString(sum[:]), nil
}

// ServerTLSConfig builds the TLS configuration of both listeners: the server certificate, and
// client certificates requested for agents' mTLS. With a client CA the certificate must chain
// to it; without one any certificate is accepted at the TLS layer and only certificates whose
// key an agent pinned authenticate.
func ServerTLSConfig(cert tls.Certificate, clientCAFile string) (*tls.Config, error) {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequestClientCert,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate found", clientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// tlsOrLoopbackPlaintext are transport credentials that speak TLS, and, when allowed (dev
// mode), plaintext HTTP/2 to clients on loopback addresses. A TLS connection starts with a
// handshake record (0x16); anything else is taken for plaintext.
type tlsOrLoopbackPlaintext struct {
	credentials.TransportCredentials
	allowPlaintext bool
}

func newTransportCredentials(cfg *tls.Config, allowPlaintextLoopback bool) credentials.TransportCredentials {
	return &tlsOrLoopbackPlaintext{TransportCredentials: credentials.NewTLS(cfg), allowPlaintext: allowPlaintextLoopback}
}

// errPlaintextRefused is returned for a plaintext connection that is not allowed.
var errPlaintextRefused = errors.New("plaintext gRPC is refused: use TLS (plaintext is allowed on loopback in --dev mode only)")

func (c *tlsOrLoopbackPlaintext) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	br := bufio.NewReader(conn)
	first, err := br.Peek(1)
	if err != nil {
		return nil, nil, fmt.Errorf("read first byte: %w", err)
	}
	pc := &peekedConn{Conn: conn, r: br}
	if first[0] == 0x16 {
		return c.TransportCredentials.ServerHandshake(pc)
	}
	if !c.allowPlaintext || !isLoopbackAddr(conn.RemoteAddr()) {
		return nil, nil, errPlaintextRefused
	}
	return insecure.NewCredentials().ServerHandshake(pc)
}

func (c *tlsOrLoopbackPlaintext) Clone() credentials.TransportCredentials {
	return &tlsOrLoopbackPlaintext{TransportCredentials: c.TransportCredentials.Clone(), allowPlaintext: c.allowPlaintext}
}

func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// peekedConn is a connection whose first bytes were read into r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }
