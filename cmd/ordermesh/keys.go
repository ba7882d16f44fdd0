package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ordermesh/ordermesh/edge"
	"github.com/ordermesh/ordermesh/persistence"
)

const keysUsage = `Usage: ordermesh keys rotate|list [flags]

Manages the access-token signing keys that the nodes (and baselines) without --jwt-secret
keep in the store.

  rotate  adds a new key; nodes sign with it once it is %s old, and honour the older keys
          for the tokens signed with them. It first deletes the older keys that no token
          can need any more: those older than the newest key when the newest is
          --access-ttl + %s old.
  list    shows the keys (never their values) and which one the nodes sign with.
`

// keysConfig is what `ordermesh keys` can be told.
type keysConfig struct {
	Store     string
	AccessTTL time.Duration
}

func parseKeysConfig(sub string, args []string) (keysConfig, error) {
	var c keysConfig
	fs := flag.NewFlagSet("ordermesh keys "+sub, flag.ContinueOnError)
	fs.StringVar(&c.Store, "store", "data/ordermesh.db", "the nodes' store: a postgres:// URL, or the file of the embedded store")
	fs.DurationVar(&c.AccessTTL, "access-ttl", 15*time.Minute, "the longest --access-ttl of the nodes and baselines: how long old keys are kept after a rotation")
	err := parseWithEnv(fs, args, keysIntro())
	return c, err
}

func keysIntro() string {
	return fmt.Sprintf(keysUsage, edge.KeyPropagation, edge.KeyRetention(0))
}

// runKeys is `ordermesh keys rotate|list`.
func runKeys(args []string) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "list") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Print(keysIntro())
			return nil
		}
		return errors.New("keys: want rotate or list\n\n" + keysIntro())
	}
	cfg, err := parseKeysConfig(args[0], args[1:])
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer store.Close()
	if args[0] == "rotate" {
		return rotateKeys(ctx, store, time.Now(), cfg.AccessTTL, os.Stdout)
	}
	return listKeys(ctx, store, time.Now(), os.Stdout)
}

// rotateKeys prunes the keys no token can need any more, then adds a new one, and tells
// out what it did.
func rotateKeys(ctx context.Context, store persistence.Secrets, now time.Time, accessTTL time.Duration, out io.Writer) error {
	pruned, err := edge.PruneKeys(ctx, store, now, edge.KeyRetention(accessTTL))
	if err != nil {
		return err
	}
	for _, kid := range pruned {
		fmt.Fprintf(out, "deleted %s: every token signed with it has expired\n", kid)
	}
	key, err := edge.RotateKey(ctx, store, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "created %s: nodes sign with it from %s; a rotation from %s on deletes the keys before it\n",
		key.ID, key.CreatedAt.Add(edge.KeyPropagation).Format(time.RFC3339), key.CreatedAt.Add(edge.KeyRetention(accessTTL)).Format(time.RFC3339))
	return nil
}

// listKeys writes a table of the signing keys to out.
func listKeys(ctx context.Context, store persistence.Secrets, now time.Time, out io.Writer) error {
	keys, err := edge.ListKeys(ctx, store, now)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		fmt.Fprintln(out, "no signing keys yet: the first node to start creates one")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tCREATED\tSTATE")
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s\t%s\n", k.ID, k.CreatedAt.Format(time.RFC3339), k.State)
	}
	return w.Flush()
}
