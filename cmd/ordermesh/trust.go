package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/ordermesh/ordermesh/cluster"
	"github.com/ordermesh/ordermesh/cluster/trust"
	"github.com/ordermesh/ordermesh/persistence"
)

const insecureWarning = "INSECURE: --insecure is set, so actor remoting and gossip are neither authenticated nor encrypted: " +
	"anyone who reaches this node's remote or gossip port can command its orders as any user, drain it, or join the cluster. " +
	"For experiments only; nodes of a secure cluster refuse this one."

// nodeSecurity reads the cluster's trust material from the store (creating it on a new
// store), issues this node its certificate, and keeps both fresh until ctx ends. With
// insecure it returns nil: the node's ports run in the clear.
func nodeSecurity(ctx context.Context, logger *slog.Logger, secrets persistence.Secrets, insecure bool) (*cluster.Security, error) {
	if insecure {
		// Repeated, so that it is in any window of the log someone looks at.
		warn := func() { logger.Warn(insecureWarning) }
		warn()
		go func() {
			t := time.NewTicker(5 * time.Minute)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					warn()
				}
			}
		}()
		return nil, nil
	}
	now := time.Now()
	m, err := trust.Bootstrap(ctx, secrets, now)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's trust material from the store: %w", err)
	}
	creds, err := trust.NewCredentials(m, now)
	if err != nil {
		return nil, err
	}
	kr, err := m.Keyring(now)
	if err != nil {
		return nil, err
	}
	go trust.Watch(ctx, secrets, trust.ReloadInterval, creds, kr, logger.With("component", "trust"))
	return &cluster.Security{ServerTLS: creds.ServerTLS(), ClientTLS: creds.ClientTLS(), GossipKeyring: kr}, nil
}

const trustUsage = `Usage: ordermesh trust COMMAND [flags]

Manages the cluster's trust material in the store: the CA that issues every node's
remoting certificate, and the gossip encryption keys. The first node on a new store
creates both; whoever can open the store is part of the cluster. Running nodes reread
the store every %s: they trust a new CA or key at once, use it once it is %s old
(renewing their certificate, or making the key primary), and drop a retired one.
Rotation needs no restart.

Commands:
  list                    list the CAs and gossip keys (never their values)
  rotate-gossip           add a new gossip key
  retire-gossip --id ID   delete an old gossip key (refused while nodes may use it)
  rotate-ca               add a new CA
  retire-ca --id ID       delete an old CA (refused while nodes may use it); open
                          connections stay open: restart nodes one by one if it leaked

`

// runTrust is `ordermesh trust`.
func runTrust(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Printf(trustUsage, trust.ReloadInterval, trust.Propagation)
		if len(args) == 0 {
			return fmt.Errorf("ordermesh trust needs a command")
		}
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("ordermesh trust "+cmd, flag.ContinueOnError)
	store := fs.String("store", "data/ordermesh.db", "a postgres:// URL, or a file path for the embedded store")
	var id *string
	if cmd == "retire-gossip" || cmd == "retire-ca" {
		id = fs.String("id", "", "id of the secret to retire (see ordermesh trust list)")
	}
	if err := parseWithEnv(fs, args[1:], fmt.Sprintf(trustUsage, trust.ReloadInterval, trust.Propagation)); err != nil {
		return err
	}
	ctx := context.Background()
	s, err := openStore(ctx, *store)
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now()
	switch cmd {
	case "list":
		return listTrust(ctx, s, now)
	case "rotate-gossip", "rotate-ca":
		if _, err := trust.Load(ctx, s); err != nil { // a rotation needs something to rotate from
			return err
		}
		add, what := trust.AddGossipKey, "gossip key"
		if cmd == "rotate-ca" {
			add, what = trust.AddCA, "CA"
		}
		newID, err := add(ctx, s, now)
		if err != nil {
			return err
		}
		fmt.Printf("added %s %s: running nodes trust it within %s and all use it by %s; the old one can be retired from %s\n",
			what, newID, trust.ReloadInterval, now.Add(trust.Propagation+trust.ReloadInterval).Format(time.RFC3339),
			now.Add(trust.Propagation+trust.RetireGrace).Format(time.RFC3339))
		return nil
	case "retire-gossip", "retire-ca":
		if *id == "" {
			return fmt.Errorf("%s needs --id", cmd)
		}
		kind := trust.KindGossip
		if cmd == "retire-ca" {
			kind = trust.KindCA
		}
		if err := trust.Retire(ctx, s, kind, *id, now); err != nil {
			return err
		}
		fmt.Printf("retired %s %s; running nodes drop it within %s\n", kind, *id, trust.ReloadInterval)
		return nil
	}
	return fmt.Errorf("ordermesh trust: unknown command %q", cmd)
}

func listTrust(ctx context.Context, s persistence.Secrets, now time.Time) error {
	m, err := trust.Load(ctx, s)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tID\tCREATED\tEXPIRES\tUSE")
	signer, primary := m.SigningCA(now).ID, m.PrimaryGossipKey(now).ID
	for _, a := range m.CAs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", trust.KindCA, a.ID, a.CreatedAt.Format(time.RFC3339),
			a.Cert.NotAfter.Format(time.RFC3339), use(a.ID == signer, "signs node certificates"))
	}
	for _, k := range m.GossipKeys {
		fmt.Fprintf(w, "%s\t%s\t%s\t-\t%s\n", trust.KindGossip, k.ID, k.CreatedAt.Format(time.RFC3339), use(k.ID == primary, "encrypts gossip"))
	}
	return w.Flush()
}

func use(current bool, what string) string {
	if current {
		return what
	}
	return "trusted"
}
