package trust

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ordermesh/ordermesh/persistence"
)

// Credentials are a node's identity on actor remoting: its certificate and the CAs it
// trusts. Update swaps both while connections are being made, so the TLS configs read
// them on every handshake. Safe for concurrent use.
type Credentials struct {
	state atomic.Pointer[credState]
}

type credState struct {
	cert   *tls.Certificate
	leaf   *x509.Certificate
	signer string // id of the CA that issued cert
	pool   *x509.CertPool
	server *tls.Config // what the server hands to each handshake
}

// NewCredentials issues a node certificate from m's signing CA and trusts all of m's CAs.
func NewCredentials(m Material, now time.Time) (*Credentials, error) {
	c := &Credentials{}
	if _, err := c.Update(m, now); err != nil {
		return nil, err
	}
	return c, nil
}

// Update trusts exactly m's CAs and issues a new node certificate when the signing CA
// changed or the certificate has passed half its life. It reports whether it did.
// Calls must not overlap (Watch makes them one at a time); handshakes may run meanwhile.
func (c *Credentials) Update(m Material, now time.Time) (renewed bool, err error) {
	if len(m.CAs) == 0 {
		return false, errors.New("updating node credentials: no CA")
	}
	pool := x509.NewCertPool()
	for _, a := range m.CAs {
		pool.AddCert(a.Cert)
	}
	next := &credState{pool: pool}
	signer := m.SigningCA(now)
	if old := c.state.Load(); old != nil && old.signer == signer.ID && now.Before(old.leaf.NotBefore.Add(NodeCertLifetime/2)) {
		next.cert, next.leaf, next.signer = old.cert, old.leaf, old.signer
	} else {
		cert, leaf, err := issue(signer, now)
		if err != nil {
			return false, err
		}
		next.cert, next.leaf, next.signer, renewed = cert, leaf, signer.ID, true
	}
	next.server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2"}, // gRPC clients insist on ALPN h2; GetConfigForClient replaces the config that had it
		Certificates: []tls.Certificate{*next.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// A resumed session skips the chain check, which would let a certificate of a
		// retired CA back in; remoting connections are long-lived, resumption saves little.
		SessionTicketsDisabled: true,
	}
	c.state.Store(next)
	return renewed, nil
}

// ServerTLS is the TLS config of the remoting server: TLS 1.3, and a client
// certificate issued by a trusted CA is required.
func (c *Credentials) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.state.Load().server, nil
		},
	}
}

// ClientTLS is the TLS config for dialing peers: TLS 1.3, this node's certificate, and
// the peer must present a certificate for ServerName issued by a trusted CA.
//
// The standard verification (RootCAs) would fix the pool when the config is made; the
// pool changes on rotation, so the chain is verified here, against the current pool,
// with crypto/x509 doing the work. InsecureSkipVerify only turns off the built-in check
// that this replaces: VerifyConnection runs on every handshake, resumed ones included.
func (c *Credentials) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.state.Load().cert, nil
		},
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection, see above
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.Verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
		},
	}
}

// Verify checks that chain (leaf first) is a node certificate for ServerName issued by
// a CA this node trusts now, valid for usage.
func (c *Credentials) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errors.New("the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName: ServerName, Roots: c.state.Load().pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("the peer's certificate is not one of this cluster's: %w", err)
	}
	return nil
}

// Certificate is this node's current certificate.
func (c *Credentials) Certificate() *x509.Certificate { return c.state.Load().leaf }

// issue makes a node certificate signed by ca, valid for NodeCertLifetime (at most until
// the CA expires), for both ends of a connection.
func issue(ca Authority, now time.Time) (*tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the node key: %w", err)
	}
	notAfter := now.Add(NodeCertLifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"ordermesh"}, CommonName: ServerName},
		DNSNames:     []string{ServerName},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing the node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the node certificate back: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf, nil
}

// Keyring is a memberlist keyring holding m's gossip keys, the current one primary.
func (m Material) Keyring(now time.Time) (*memberlist.Keyring, error) {
	keys := make([][]byte, len(m.GossipKeys))
	for i, k := range m.GossipKeys {
		keys[i] = k.Key
	}
	kr, err := memberlist.NewKeyring(keys, m.PrimaryGossipKey(now).Key)
	if err != nil {
		return nil, fmt.Errorf("building the gossip keyring: %w", err)
	}
	return kr, nil
}

// SyncKeyring makes kr hold exactly m's gossip keys with the current one primary: new
// keys are added first (so they decrypt at once), then the primary switches, then
// retired keys go.
func (m Material) SyncKeyring(kr *memberlist.Keyring, now time.Time) error {
	for _, k := range m.GossipKeys {
		if err := kr.AddKey(k.Key); err != nil {
			return fmt.Errorf("adding gossip key %s: %w", k.ID, err)
		}
	}
	primary := m.PrimaryGossipKey(now)
	if err := kr.UseKey(primary.Key); err != nil {
		return fmt.Errorf("making gossip key %s primary: %w", primary.ID, err)
	}
	for _, have := range kr.GetKeys() {
		known := false
		for _, k := range m.GossipKeys {
			known = known || bytes.Equal(k.Key, have)
		}
		if !known {
			if err := kr.RemoveKey(have); err != nil {
				return fmt.Errorf("removing a retired gossip key: %w", err)
			}
		}
	}
	return nil
}

// Watch rereads the store every interval until ctx ends and applies what it finds to
// creds and kr: new CAs and gossip keys are trusted at once, used after Propagation,
// retired ones dropped. A failed read or an incomplete store is logged and the last
// good material kept, so a store outage does not cut the cluster apart.
func Watch(ctx context.Context, s persistence.Secrets, interval time.Duration, creds *Credentials, kr *memberlist.Keyring, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m, err := Load(ctx, s)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("reloading the cluster's trust material; keeping the last one", "err", err)
			}
			continue
		}
		now := time.Now()
		renewed, err := creds.Update(m, now)
		if err != nil {
			log.Error("updating the node certificate", "err", err)
		} else if renewed {
			log.Info("node certificate renewed", "ca", m.SigningCA(now).ID, "not_after", creds.Certificate().NotAfter)
		}
		if err := m.SyncKeyring(kr, now); err != nil {
			log.Error("updating the gossip keyring", "err", err)
		}
	}
}
