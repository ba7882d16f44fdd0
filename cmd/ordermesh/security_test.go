package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/ordermesh/ordermesh/actors/orderpb"
	"github.com/ordermesh/ordermesh/cluster/clusterpb"
	"github.com/ordermesh/ordermesh/cluster/trust"
	"github.com/ordermesh/ordermesh/persistence/sqlite"
)

// These tests play someone who reaches a node's cluster ports without being part of the
// cluster: they must neither join the membership nor get a message to an actor.

// TestForeignNodesCannotJoin: a node with another store (so another CA and gossip key),
// and an --insecure node on the cluster's own store, both fail to join a secure cluster;
// a secure node fails to join an insecure one. None of them shows up in a view.
func TestForeignNodesCannotJoin(t *testing.T) {
	c := startCluster(t, postgresURL(t), 3)
	c.waitConverged(10*time.Second, 3, c.nodes...)
	seed := c.nodes[0].addrs.gossip
	foreignStore := filepath.Join(t.TempDir(), "foreign.db")

	for name, args := range map[string][]string{
		"another store": {"--store", foreignStore, "--join", seed},
		"insecure":      {"--insecure", "--join", seed},
	} {
		if p, err := launch(t, c.dsn, newAddrs(t), args...); err == nil {
			// It came up: then it must be alone, seeing none of the cluster.
			st, err := login(t, p.base, "olga").cluster(t)
			if err != nil || len(st.Members) != 1 {
				t.Fatalf("%s node joined the cluster: %+v %v", name, st, err)
			}
		} else if !strings.Contains(err.Error(), "joining") {
			t.Fatalf("%s node failed, but not at the join: %v", name, err)
		} else {
			t.Logf("%s node: %s", name, lastLine(err.Error()))
		}
	}
	// Memberlist tells a seed of a node during the join, so by now a joined node would
	// be in the seed's view.
	op := login(t, c.nodes[0].base, "olga")
	for _, p := range c.nodes {
		op.base = p.base
		st, err := op.cluster(t)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Members) != 3 {
			t.Fatalf("node %s sees %d members, want the 3 of the cluster: %+v", p.base, len(st.Members), st.Members)
		}
	}

	// And the other way round: a secure node cannot join an insecure cluster.
	plain := startFresh(t, filepath.Join(t.TempDir(), "plain.db"), "--insecure")
	if p, err := launch(t, c.dsn, newAddrs(t), "--join", plain.addrs.gossip); err == nil {
		if st, err := login(t, p.base, "olga").cluster(t); err != nil || len(st.Members) != 1 {
			t.Fatalf("secure node joined an insecure one: %+v %v", st, err)
		}
	} else if !strings.Contains(err.Error(), "joining") {
		t.Fatalf("secure node failed, but not at the join: %v", err)
	} else {
		t.Logf("secure node joining an insecure one: %s", lastLine(err.Error()))
	}
	if st, err := login(t, plain.base, "olga").cluster(t); err != nil || len(st.Members) != 1 {
		t.Fatalf("the insecure node met a secure one: %+v %v", st, err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// attack connects to a node's remoting port as protoactor's own nodes do and sends it
// msgs, each to every target. It returns the first error, or nil once the node took the
// batch. Nothing answers the attacker (replies would go to a sender it did not give).
func attack(ctx context.Context, addr string, creds credentials.TransportCredentials, targets []*actor.PID, msgs ...proto.Message) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := remote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		return fmt.Errorf("opening the stream: %w", err)
	}
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{
		ConnectRequest: &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
			ServerConnection: &remote.ServerConnection{SystemId: "attacker", Address: "127.0.0.1:1"},
		}},
	}}); err != nil {
		return fmt.Errorf("sending the connect request: %w", err)
	}
	reply, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("receiving the connect response: %w", err)
	}
	if reply.GetConnectResponse() == nil {
		return fmt.Errorf("got %T instead of a connect response", reply.MessageType)
	}
	batch := &remote.MessageBatch{Targets: targets}
	for i, m := range msgs {
		data, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		batch.TypeNames = append(batch.TypeNames, string(proto.MessageName(m)))
		for ti := range targets {
			batch.Envelopes = append(batch.Envelopes, &remote.MessageEnvelope{TypeId: int32(i), MessageData: data, Target: int32(ti)})
		}
	}
	if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: batch}}); err != nil {
		return fmt.Errorf("sending the batch: %w", err)
	}
	// The node reads the stream in order: once it has closed our half, it had the batch.
	if err := stream.CloseSend(); err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			return nil // EOF or reset after the batch was read
		}
	}
}

// grainPIDs are the process ids a grain of order id can have on a node that started
// fewer than 4096 processes: protoactor names it "order/<id>" plus its sequence number
// in base 64 (actor.ProcessRegistryValue.NextId).
func grainPIDs(addr, id string) []*actor.PID {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ~+"
	var pids []*actor.PID
	for n := 1; n < 64*64; n++ {
		seq := string(digits[n&63])
		if n >= 64 {
			seq = string(digits[n>>6]) + seq
		}
		pids = append(pids, actor.NewPID(addr, "order/"+id+"$"+seq))
	}
	return pids
}

func orderIDOf(t testing.TB, env envelope) string {
	t.Helper()
	var v orderView
	if err := json.Unmarshal(env.Data, &v); err != nil || v.ID == "" {
		t.Fatalf("reading the order id from %s: %v", env.Data, err)
	}
	return v.ID
}

// TestRemotePortRefusesStrangers: a client that speaks protoactor's remoting protocol
// cancels any order as "admin" and drains the node when the node runs --insecure (so the
// attack is real); against a secure node the same client fails at the TLS handshake
// whether it brings no TLS, no certificate or a certificate of another CA, and nothing
// changes.
func TestRemotePortRefusesStrangers(t *testing.T) {
	cancelAsAdmin := func(id string) proto.Message {
		return &orderpb.CommandRequest{
			Type: "Cancel", OrderId: id, IdempotencyKey: "attacker-" + id, Reason: "attack",
			By: &orderpb.Principal{Subject: "mallory", Role: "admin"},
		}
	}
	newOrder := func(p *proc) (*client, string) {
		shopper := login(t, p.base, "alice")
		status, env, err := shopper.do("POST", "/api/v1/orders", "security-"+p.addrs.http, orderBody)
		if err != nil || status/100 != 2 {
			t.Fatalf("creating an order: %d %+v %v", status, env, err)
		}
		return shopper, orderIDOf(t, env)
	}

	t.Run("insecure node obeys", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		remoteAddr := freeAddr(t)
		p := startFresh(t, filepath.Join(t.TempDir(), "plain.db"), "--insecure", "--remote", remoteAddr)
		shopper, id := newOrder(p)
		if err := attack(ctx, remoteAddr, insecure.NewCredentials(), grainPIDs(remoteAddr, id), cancelAsAdmin(id)); err != nil {
			t.Fatalf("attacking an insecure node: %v", err)
		}
		waitFor(t, 10*time.Second, "the attacker's cancel", func() bool { return shopper.order(t, id).Status == "CLOSED" })
		placement := []*actor.PID{actor.NewPID(remoteAddr, "ordermesh-placement")}
		if err := attack(ctx, remoteAddr, insecure.NewCredentials(), placement, &clusterpb.DrainRequest{RequestedBy: "mallory"}); err != nil {
			t.Fatalf("attacking an insecure node: %v", err)
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			t.Fatal("the insecure node did not drain on the attacker's request")
		}
	})

	t.Run("secure node refuses", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		remoteAddr := freeAddr(t)
		p := startFresh(t, filepath.Join(t.TempDir(), "secure.db"), "--remote", remoteAddr)
		shopper, id := newOrder(p)
		before := shopper.order(t, id)

		// A certificate of another cluster's CA, and the attacker skips checking ours.
		otherStore, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "other.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer otherStore.Close()
		m, err := trust.Bootstrap(ctx, otherStore, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		other, err := trust.NewCredentials(m, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		otherCert, err := other.ClientTLS().GetClientCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, creds := range map[string]credentials.TransportCredentials{
			"plaintext":             insecure.NewCredentials(),
			"TLS, no certificate":   credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}),                                              //nolint:gosec // attacker
			"TLS, another CA's one": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*otherCert}}), //nolint:gosec // attacker
		} {
			targets := append(grainPIDs(remoteAddr, id), actor.NewPID(remoteAddr, "ordermesh-placement"))
			err := attack(ctx, remoteAddr, creds, targets, cancelAsAdmin(id), &clusterpb.DrainRequest{RequestedBy: "mallory"})
			if err == nil {
				t.Fatalf("%s: the node took the attacker's messages", name)
			}
			t.Logf("%s: refused: %v", name, err)
		}
		after := shopper.order(t, id)
		if after != before {
			t.Fatalf("the order changed under attack: %+v -> %+v", before, after)
		}
		// The node is neither draining nor gone.
		resp, err := http.Get(p.base + "/readyz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("after the attack /readyz: %v %v", resp, err)
		}
		resp.Body.Close()
	})
}
