// Package trust makes the store the root of trust of a cluster. The store holds the
// cluster CA and the gossip keys as secrets (persistence.Secrets); every node that can
// open the store reads them, issues itself a short-lived certificate signed by the CA
// for mutual TLS on actor remoting, and encrypts gossip with the keys. The first node of
// a cluster creates both, so a local cluster needs no configuration.
//
// Rotation never changes a secret in place: a new CA or gossip key is added, nodes pick
// it up when they reload (Watch) and trust it at once, start using it once it has been in
// the store for Propagation (by then every node trusts it: a node renews its certificate
// from the new CA, or makes the new gossip key primary, at its next reload), and the old
// one is retired by deleting it (Retire), after which nodes drop it at their next reload.
// Rotation needs no restart.
package trust

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// Secret kinds this package owns in the store.
const (
	KindCA     = "ca"     // value: PEM certificate and PKCS#8 private key of a cluster CA
	KindGossip = "gossip" // value: a 32-byte AES-256 key for memberlist
)

// Ids of the secrets the first node creates. They are fixed so that nodes racing to
// start a new cluster all try the same id and converge on the one that won.
const (
	FirstCAID     = "cluster-ca"
	FirstGossipID = "gossip-initial"
)

// ServerName is the DNS name in every node certificate, and the only name a node checks
// when it dials a peer: addresses change (advertised hosts, NAT, port 0) but membership
// in the cluster is what the CA vouches for.
const ServerName = "ordermesh-node"

// Lifetimes and periods.
const (
	CALifetime       = 10 * 365 * 24 * time.Hour
	NodeCertLifetime = 30 * 24 * time.Hour
	// Propagation is how long a new CA or gossip key stays in the store before nodes
	// sign or encrypt with it. It is several reload intervals, so that every running
	// node trusts the new one before any node starts using it.
	Propagation = 2 * time.Minute
	// ReloadInterval is how often Watch rereads the store.
	ReloadInterval = 30 * time.Second
	// clockSkew backdates certificates, so a peer whose clock is a little behind accepts them.
	clockSkew = 5 * time.Minute
)

// GossipKeySize is the size of a gossip key: AES-256.
const GossipKeySize = 32

// Authority is a cluster CA read from the store.
type Authority struct {
	ID        string
	Cert      *x509.Certificate
	Key       *ecdsa.PrivateKey
	CreatedAt time.Time
}

// GossipKey is one memberlist key read from the store.
type GossipKey struct {
	ID        string
	Key       []byte
	CreatedAt time.Time
}

// Material is the trust material in the store at one read, each kind oldest first.
type Material struct {
	CAs        []Authority
	GossipKeys []GossipKey
}

// Bootstrap makes sure the store holds a CA and a gossip key, creating the first ones
// if it holds none, and returns what it holds then. Nodes may race here on a new
// cluster: they all create the same ids, one wins and all read the winner.
func Bootstrap(ctx context.Context, s persistence.Secrets, now time.Time) (Material, error) {
	if err := ensure(ctx, s, KindCA, FirstCAID, now, newCAValue); err != nil {
		return Material{}, err
	}
	if err := ensure(ctx, s, KindGossip, FirstGossipID, now, newGossipKey); err != nil {
		return Material{}, err
	}
	return Load(ctx, s)
}

// ensure creates the secret kind/id with a value from gen unless the kind has any.
func ensure(ctx context.Context, s persistence.Secrets, kind, id string, now time.Time, gen func(id string, now time.Time) ([]byte, error)) error {
	have, err := s.Secrets(ctx, kind)
	if err != nil {
		return fmt.Errorf("reading %s secrets: %w", kind, err)
	}
	if len(have) > 0 {
		return nil
	}
	value, err := gen(id, now)
	if err != nil {
		return err
	}
	if _, err := s.CreateSecret(ctx, persistence.Secret{Kind: kind, ID: id, Value: value, CreatedAt: now}); err != nil {
		return fmt.Errorf("creating the first %s secret: %w", kind, err)
	}
	return nil
}

// Load reads the trust material from the store. It fails if the store holds no CA or
// no gossip key, or one it cannot read: a node must not run with less than the
// cluster's trust.
func Load(ctx context.Context, s persistence.Secrets) (Material, error) {
	var m Material
	cas, err := s.Secrets(ctx, KindCA)
	if err != nil {
		return Material{}, fmt.Errorf("reading CA secrets: %w", err)
	}
	for _, sec := range cas {
		a, err := parseCA(sec)
		if err != nil {
			return Material{}, err
		}
		m.CAs = append(m.CAs, a)
	}
	keys, err := s.Secrets(ctx, KindGossip)
	if err != nil {
		return Material{}, fmt.Errorf("reading gossip secrets: %w", err)
	}
	for _, sec := range keys {
		if len(sec.Value) != GossipKeySize {
			return Material{}, fmt.Errorf("gossip key %q has %d bytes, want %d", sec.ID, len(sec.Value), GossipKeySize)
		}
		m.GossipKeys = append(m.GossipKeys, GossipKey{ID: sec.ID, Key: sec.Value, CreatedAt: sec.CreatedAt})
	}
	if len(m.CAs) == 0 || len(m.GossipKeys) == 0 {
		return Material{}, fmt.Errorf("the store holds %d CAs and %d gossip keys; it needs at least one of each (a node creates them on a new store)",
			len(m.CAs), len(m.GossipKeys))
	}
	return m, nil
}

// SigningCA is the CA node certificates are issued by now: the newest at least
// Propagation old (persistence.InUse).
func (m Material) SigningCA(now time.Time) Authority {
	return persistence.InUse(m.CAs, func(a Authority) time.Time { return a.CreatedAt }, now, Propagation)
}

// PrimaryGossipKey is the key gossip is encrypted with now: the newest at least
// Propagation old (persistence.InUse).
func (m Material) PrimaryGossipKey(now time.Time) GossipKey {
	return persistence.InUse(m.GossipKeys, func(k GossipKey) time.Time { return k.CreatedAt }, now, Propagation)
}

// AddCA stores a new CA for a rotation and returns its id.
func AddCA(ctx context.Context, s persistence.Secrets, now time.Time) (string, error) {
	return add(ctx, s, KindCA, "ca-", now, newCAValue)
}

// AddGossipKey stores a new gossip key for a rotation and returns its id.
func AddGossipKey(ctx context.Context, s persistence.Secrets, now time.Time) (string, error) {
	return add(ctx, s, KindGossip, "gossip-", now, newGossipKey)
}

// add stores a new secret under an id that sorts by time (the store breaks ties of
// CreatedAt by id) and is unique.
func add(ctx context.Context, s persistence.Secrets, kind, prefix string, now time.Time, gen func(id string, now time.Time) ([]byte, error)) (string, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := prefix + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(suffix)
	value, err := gen(id, now)
	if err != nil {
		return "", err
	}
	created, err := s.CreateSecret(ctx, persistence.Secret{Kind: kind, ID: id, Value: value, CreatedAt: now})
	if err != nil {
		return "", fmt.Errorf("storing %s secret %s: %w", kind, id, err)
	}
	if !created {
		return "", fmt.Errorf("storing %s secret %s: the id is taken", kind, id)
	}
	return id, nil
}

// ErrInUse is returned by Retire for a secret nodes still sign or encrypt with, or the
// last one of its kind.
var ErrInUse = errors.New("secret in use")

// RetireGrace is how long a secret stays in use after its successor became current:
// nodes switch at their next reload, so until then some still use the old one.
const RetireGrace = 2 * ReloadInterval

// Retire deletes a CA or gossip key that nodes no longer use. It refuses the last one of
// its kind, and one that is current (see current) or was within RetireGrace: rotate a
// new one in and wait Propagation plus RetireGrace first. Nodes drop a retired key at
// their next reload. Connections that are already open stay open: after retiring a CA
// that may have leaked, restart the nodes one by one to close them.
func Retire(ctx context.Context, s persistence.Secrets, kind, id string, now time.Time) error {
	m, err := Load(ctx, s)
	if err != nil {
		return err
	}
	var ids []string
	var inUse func(time.Time) string
	switch kind {
	case KindCA:
		for _, a := range m.CAs {
			ids = append(ids, a.ID)
		}
		inUse = func(at time.Time) string { return m.SigningCA(at).ID }
	case KindGossip:
		for _, k := range m.GossipKeys {
			ids = append(ids, k.ID)
		}
		inUse = func(at time.Time) string { return m.PrimaryGossipKey(at).ID }
	default:
		return fmt.Errorf("retiring: unknown kind %q (want %s or %s)", kind, KindCA, KindGossip)
	}
	if !slices.Contains(ids, id) {
		return fmt.Errorf("retiring %s %s: %w", kind, id, persistence.ErrNotFound)
	}
	if id == inUse(now) || id == inUse(now.Add(-RetireGrace)) {
		return fmt.Errorf("retiring %s %s: nodes use it now or did within %s (rotate a new one in; it takes over %s after): %w",
			kind, id, RetireGrace, Propagation, ErrInUse)
	}
	if err := s.DeleteSecret(ctx, kind, id); err != nil {
		return fmt.Errorf("retiring %s %s: %w", kind, id, err)
	}
	return nil
}

func newGossipKey(string, time.Time) ([]byte, error) {
	key := make([]byte, GossipKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating a gossip key: %w", err)
	}
	return key, nil
}

// newCAValue makes a self-signed ECDSA P-256 CA, encoded as the secret's value.
func newCAValue(id string, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{"ordermesh"}, CommonName: "ordermesh cluster CA " + id},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CALifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing the CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the CA key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), nil
}

// parseCA reads a CA secret written by newCAValue.
func parseCA(sec persistence.Secret) (Authority, error) {
	a := Authority{ID: sec.ID, CreatedAt: sec.CreatedAt}
	rest := sec.Value
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return Authority{}, fmt.Errorf("CA %q: parsing the certificate: %w", sec.ID, err)
			}
			a.Cert = cert
		case "PRIVATE KEY":
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return Authority{}, fmt.Errorf("CA %q: parsing the key: %w", sec.ID, err)
			}
			ec, ok := key.(*ecdsa.PrivateKey)
			if !ok {
				return Authority{}, fmt.Errorf("CA %q: the key is a %T, want ECDSA", sec.ID, key)
			}
			a.Key = ec
		}
	}
	if a.Cert == nil || a.Key == nil || !a.Cert.IsCA {
		return Authority{}, fmt.Errorf("CA %q: the secret does not hold a CA certificate and its key", sec.ID)
	}
	if !a.Key.PublicKey.Equal(a.Cert.PublicKey) {
		return Authority{}, fmt.Errorf("CA %q: the key does not match the certificate", sec.ID)
	}
	return a, nil
}

func randomSerial() *big.Int {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand does not fail on Linux
	}
	return serial
}
