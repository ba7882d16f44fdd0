package trust

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

func newStore(t *testing.T) persistence.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "trust.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBootstrapRaceConvergesOnOneCAAndKey(t *testing.T) {
	s := newStore(t)
	const nodes = 8
	got := make([]Material, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = Bootstrap(context.Background(), s, time.Now())
		}()
	}
	close(start)
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		m := got[i]
		if len(m.CAs) != 1 || len(m.GossipKeys) != 1 {
			t.Fatalf("node %d sees %d CAs and %d gossip keys; want one of each", i, len(m.CAs), len(m.GossipKeys))
		}
		if !m.CAs[0].Cert.Equal(got[0].CAs[0].Cert) || !bytes.Equal(m.GossipKeys[0].Key, got[0].GossipKeys[0].Key) {
			t.Fatalf("node %d has another CA or gossip key than node 0", i)
		}
	}
	ca := got[0].CAs[0]
	if ca.ID != FirstCAID || !ca.Cert.IsCA || ca.Cert.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) {
		t.Fatalf("CA %s: IsCA %v, expires %s; want the long-lived %s", ca.ID, ca.Cert.IsCA, ca.Cert.NotAfter, FirstCAID)
	}
	// A later start reads what is there and creates nothing.
	again, err := Bootstrap(context.Background(), s, time.Now())
	if err != nil || len(again.CAs) != 1 || !again.CAs[0].Cert.Equal(ca.Cert) {
		t.Fatalf("second bootstrap: %v, %d CAs", err, len(again.CAs))
	}
}

func TestLoadRefusesAnEmptyStore(t *testing.T) {
	if _, err := Load(context.Background(), newStore(t)); err == nil {
		t.Fatal("Load of a store without trust material succeeded")
	}
}

// handshake runs a TLS handshake between a server and a client config over loopback
// TCP, each side then exchanging a byte (in TLS 1.3 a refused client certificate shows
// on the client only at its first read), and returns both sides' errors.
func handshake(t *testing.T, server, client *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		srv := tls.Server(conn, server)
		defer srv.Close()
		if err := srv.Handshake(); err != nil {
			done <- err
			return
		}
		if _, err := io.ReadFull(srv, make([]byte, 1)); err != nil {
			done <- err
			return
		}
		_, err = srv.Write([]byte{1})
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := tls.Client(conn, client)
	clientErr = cl.Handshake()
	if clientErr == nil {
		if _, clientErr = cl.Write([]byte{1}); clientErr == nil {
			_, clientErr = io.ReadFull(cl, make([]byte, 1))
		}
	}
	cl.Close()
	return clientErr, <-done
}

func credentials(t *testing.T, s persistence.Secrets) (*Credentials, Material) {
	t.Helper()
	m, err := Bootstrap(context.Background(), s, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCredentials(m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c, m
}

func TestNodesOfOneClusterTrustEachOther(t *testing.T) {
	s := newStore(t)
	a, m := credentials(t, s)
	b, _ := credentials(t, s)
	if err := a.Verify([]*x509.Certificate{b.Certificate()}, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("a refuses b's certificate: %v", err)
	}
	if b.Certificate().NotAfter.After(time.Now().Add(NodeCertLifetime)) || b.Certificate().Issuer.CommonName != m.CAs[0].Cert.Subject.CommonName {
		t.Fatalf("node certificate: issuer %q, expires %s", b.Certificate().Issuer.CommonName, b.Certificate().NotAfter)
	}
	if cErr, sErr := handshake(t, a.ServerTLS(), b.ClientTLS()); cErr != nil || sErr != nil {
		t.Fatalf("handshake between two nodes: client %v, server %v", cErr, sErr)
	}
}

func TestACertificateOfAnotherCAIsRefused(t *testing.T) {
	ours, _ := credentials(t, newStore(t))
	theirs, _ := credentials(t, newStore(t)) // another store: another CA
	if err := ours.Verify([]*x509.Certificate{theirs.Certificate()}, x509.ExtKeyUsageClientAuth); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	// As a client: our server refuses it.
	if _, sErr := handshake(t, ours.ServerTLS(), theirs.ClientTLS()); sErr == nil {
		t.Fatal("our server accepted a client of another CA")
	}
	// As a server: our client refuses it.
	if cErr, _ := handshake(t, theirs.ServerTLS(), ours.ClientTLS()); cErr == nil {
		t.Fatal("our client accepted a server of another CA")
	}
	// A client without any certificate is refused too.
	noCert := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // the attacker's side
	if _, sErr := handshake(t, ours.ServerTLS(), noCert); sErr == nil {
		t.Fatal("our server accepted a client without a certificate")
	}
}

func TestRotationTrustsAtOnceAndUsesAfterPropagation(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	c, m := credentials(t, s)
	start := time.Now() // after the first secrets, as a rotation is
	old := m.CAs[0].ID
	oldKey := m.GossipKeys[0]
	kr, err := m.Keyring(start)
	if err != nil {
		t.Fatal(err)
	}

	newCA, err := AddCA(ctx, s, start)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := AddGossipKey(ctx, s, start)
	if err != nil {
		t.Fatal(err)
	}
	m, err = Load(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// Before Propagation: both trusted, the old ones still used.
	if _, err := c.Update(m, start); err != nil {
		t.Fatal(err)
	}
	if m.SigningCA(start).ID != old || m.PrimaryGossipKey(start).ID != oldKey.ID {
		t.Fatalf("a rotated-in secret is used before Propagation")
	}
	if err := m.SyncKeyring(kr, start); err != nil {
		t.Fatal(err)
	}
	if len(kr.GetKeys()) != 2 || !bytes.Equal(kr.GetPrimaryKey(), oldKey.Key) {
		t.Fatalf("keyring has %d keys, primary new %v; want both, the old primary", len(kr.GetKeys()), !bytes.Equal(kr.GetPrimaryKey(), oldKey.Key))
	}
	oldCert, err := NewCredentials(m, start) // a node that has not renewed yet
	if err != nil {
		t.Fatal(err)
	}
	peer, err := NewCredentials(m, start.Add(Propagation)) // a node started after Propagation
	if err != nil {
		t.Fatal(err)
	}
	if peer.Certificate().Issuer.CommonName != "ordermesh cluster CA "+newCA {
		t.Fatalf("a node started after Propagation has a certificate of %q", peer.Certificate().Issuer.CommonName)
	}
	if err := c.Verify([]*x509.Certificate{peer.Certificate()}, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("a node that reloaded refuses a certificate of the new CA: %v", err)
	}
	// Mid-rotation, a node with an old certificate and one with a new one talk both ways.
	if cErr, sErr := handshake(t, c.ServerTLS(), peer.ClientTLS()); cErr != nil || sErr != nil {
		t.Fatalf("new-CA client to old-CA server: client %v, server %v", cErr, sErr)
	}
	if cErr, sErr := handshake(t, peer.ServerTLS(), c.ClientTLS()); cErr != nil || sErr != nil {
		t.Fatalf("old-CA client to new-CA server: client %v, server %v", cErr, sErr)
	}

	// Right after Propagation nodes are still switching: the old ones stay.
	if err := Retire(ctx, s, KindGossip, oldKey.ID, start.Add(Propagation)); !errors.Is(err, ErrInUse) {
		t.Fatalf("retiring the old gossip key as nodes switch: %v; want ErrInUse", err)
	}
	// Once every node has switched, the old ones can be retired, not the new ones.
	later := start.Add(Propagation + RetireGrace)
	if err := Retire(ctx, s, KindGossip, newKey, later); !errors.Is(err, ErrInUse) {
		t.Fatalf("retiring the primary gossip key: %v; want ErrInUse", err)
	}
	if err := Retire(ctx, s, KindGossip, oldKey.ID, later); err != nil {
		t.Fatal(err)
	}
	if err := Retire(ctx, s, KindCA, old, later); err != nil {
		t.Fatal(err)
	}
	m, err = Load(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if renewed, err := c.Update(m, later); err != nil || !renewed {
		t.Fatalf("Update after the CA rotation: renewed %v, %v; want a new certificate", renewed, err)
	}
	if err := m.SyncKeyring(kr, later); err != nil {
		t.Fatal(err)
	}
	if len(kr.GetKeys()) != 1 || bytes.Equal(kr.GetPrimaryKey(), oldKey.Key) {
		t.Fatalf("keyring keeps the retired key")
	}
	if err := c.Verify([]*x509.Certificate{peer.Certificate()}, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatal(err)
	}
	// A node still holding a certificate of the retired CA is refused.
	if _, sErr := handshake(t, c.ServerTLS(), oldCert.ClientTLS()); sErr == nil {
		t.Fatal("a certificate of a retired CA was accepted")
	}
	if err := Retire(ctx, s, KindCA, newCA, later); !errors.Is(err, ErrInUse) {
		t.Fatalf("retiring the last CA: %v; want ErrInUse", err)
	}
}
