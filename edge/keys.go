package edge

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// Access-token signing keys live in the store (persistence.Secrets, kind "jwt"), so every
// node of a cluster signs and verifies with the same keys and a restart logs nobody out.
//
// Life of a key: the first node of a cluster creates "k0001" (racing nodes all try the
// same id, so exactly one value wins). `ordermesh keys rotate` adds the next one. A node
// signs with the newest key that is at least KeyPropagation old (or the oldest key, when
// none is), so that every node has loaded a key before tokens signed with it reach them;
// nodes reload every KeyReload, and at once when a token names a key they do not know.
// Older keys keep verifying the tokens signed with them until the rotation command prunes
// them, which it does only when no token signed with them can still be valid (KeyRetention).

// Secret kinds and ids the edge owns in the store.
const (
	// SecretKindJWT is the kind of the access-token signing keys; their id is the token's kid.
	SecretKindJWT = "jwt"
	// SecretKindCursor is the kind of the secret the listing-cursor MAC key is derived from.
	SecretKindCursor = "cursor"

	firstKeyID     = "k0001" // every node bootstraps the same id, so one first key wins
	keyIDPrefix    = "k"
	cursorSecretID = "c0001"
	keyBytes       = 32
	maxKIDLen      = 64 // a longer kid is refused before anything is looked up
)

// Timing of key distribution. They are fixed rather than configurable because the
// rotation command, a separate process, has to agree with every node on them.
const (
	// KeyPropagation is how old a key must be before nodes sign with it.
	KeyPropagation = time.Minute
	// KeyReload is how often a node rereads the keys from the store.
	KeyReload = 30 * time.Second
	// ClockSkew is the margin allowed between the clocks of nodes and the rotating host.
	ClockSkew = time.Minute
	// missReloadEvery bounds the store reads that tokens with unknown kids can cause.
	missReloadEvery = time.Second
)

// KeyRetention is how long after a newer key was created the older keys must still be
// kept, for nodes whose access tokens live accessTTL: until every node signs with the
// newer key (propagation plus one reload) and the last token signed before has expired.
func KeyRetention(accessTTL time.Duration) time.Duration {
	return KeyPropagation + KeyReload + accessTTL + ClockSkew
}

// KeyRing is the set of access-token signing keys a node holds, plus the cursor MAC key.
// It is safe for concurrent use.
type KeyRing struct {
	src    persistence.Secrets // nil for a fixed key (--jwt-secret)
	now    func() time.Time
	log    *slog.Logger
	cursor []byte // listing-cursor MAC key; never one of the signing keys

	mu   sync.RWMutex
	keys []persistence.Secret // oldest first; never empty

	reloadMu sync.Mutex // one miss-triggered reload at a time
	lastMiss time.Time
}

// KeyRingOptions are optional collaborators of OpenKeyRing.
type KeyRingOptions struct {
	Clock  func() time.Time // nil = time.Now; must be the edge's clock
	Logger *slog.Logger     // nil = slog.Default()
}

// OpenKeyRing loads the signing keys from the store, creating the cluster's first key and
// cursor secret if there are none yet. Call Run to keep the ring up to date.
func OpenKeyRing(ctx context.Context, src persistence.Secrets, opts KeyRingOptions) (*KeyRing, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &KeyRing{src: src, now: opts.Clock, log: opts.Logger}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	if len(r.keys) == 0 {
		created, err := src.CreateSecret(ctx, persistence.Secret{Kind: SecretKindJWT, ID: firstKeyID, Value: randomKey(), CreatedAt: r.now().UTC()})
		if err != nil {
			return nil, fmt.Errorf("creating the first access-token key: %w", err)
		}
		if created {
			r.log.Info("created the cluster's first access-token signing key", slog.String("kid", firstKeyID))
		}
		if err := r.Reload(ctx); err != nil {
			return nil, err
		}
		if len(r.keys) == 0 {
			return nil, errors.New("loading access-token keys: none in the store after creating one")
		}
	}
	seed, err := cursorSeed(ctx, src)
	if err != nil {
		return nil, err
	}
	r.cursor = deriveCursorKey(seed)
	return r, nil
}

// StaticKeyRing is a ring of the one key given with --jwt-secret: the store's keys are
// not used. Its kid is derived from the secret, and tokens without a kid (issued before
// kids existed) are verified with it too, as the one key there is.
func StaticKeyRing(secret []byte) (*KeyRing, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("edge: JWT secret must be at least %d bytes", MinSecretLen)
	}
	key := persistence.Secret{Kind: SecretKindJWT, ID: staticKID(secret), Value: append([]byte(nil), secret...)}
	return &KeyRing{now: time.Now, log: slog.Default(), keys: []persistence.Secret{key}, cursor: deriveCursorKey(secret)}, nil
}

// staticKID names a --jwt-secret key by a hash prefix: stable across nodes and restarts,
// and no use to anyone guessing the secret.
func staticKID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("ordermesh jwt kid\x00"), secret...))
	return "s" + hex.EncodeToString(sum[:8])
}

// Current returns the key to sign new tokens with: the newest one that every node has had
// KeyPropagation to load, or the oldest one while none is that old (a new cluster).
func (r *KeyRing) Current() (kid string, key []byte) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k := signingKey(r.keys, r.now())
	return k.ID, k.Value
}

// Lookup returns the key with the given kid. A kid the ring does not know makes it reread
// the store (at most once per second, whatever the callers send), so that a key another
// node or the rotation command has just created is honoured at once.
func (r *KeyRing) Lookup(ctx context.Context, kid string) ([]byte, bool) {
	if key, ok := r.find(kid); ok || r.src == nil || kid == "" || len(kid) > maxKIDLen {
		return key, ok
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if key, ok := r.find(kid); ok { // loaded by the reload we waited for
		return key, true
	}
	now := r.now()
	if !r.lastMiss.IsZero() && now.Sub(r.lastMiss) < missReloadEvery {
		return nil, false
	}
	r.lastMiss = now
	if err := r.Reload(ctx); err != nil {
		r.log.Warn("reloading access-token keys for an unknown kid", slog.Any("err", err))
		return nil, false
	}
	return r.find(kid)
}

// verificationKey is the key for a token's kid; a token without one is accepted only by a
// static ring, whose one key it must then have been signed with.
func (r *KeyRing) verificationKey(ctx context.Context, kid string) ([]byte, bool) {
	if kid == "" {
		if r.src != nil {
			return nil, false
		}
		_, key := r.Current()
		return key, true
	}
	return r.Lookup(ctx, kid)
}

func (r *KeyRing) find(kid string) ([]byte, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.ID == kid {
			return k.Value, true
		}
	}
	return nil, false
}

// Reload rereads the signing keys from the store. Keys shorter than MinSecretLen are
// skipped; if none is left, the ring keeps the keys it had rather than sign with nothing.
func (r *KeyRing) Reload(ctx context.Context) error {
	if r.src == nil {
		return nil
	}
	all, err := r.src.Secrets(ctx, SecretKindJWT)
	if err != nil {
		return fmt.Errorf("loading access-token keys: %w", err)
	}
	keys := make([]persistence.Secret, 0, len(all))
	for _, k := range all {
		if len(k.Value) < MinSecretLen {
			r.log.Warn("ignoring an access-token key shorter than the minimum", slog.String("kid", k.ID))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		if len(all) > 0 {
			return errors.New("loading access-token keys: every key in the store is too short")
		}
		r.mu.RLock()
		had := len(r.keys)
		r.mu.RUnlock()
		if had > 0 {
			return errors.New("loading access-token keys: the store has none; keeping the loaded ones")
		}
	}
	r.mu.Lock()
	r.keys = keys
	r.mu.Unlock()
	return nil
}

// Run rereads the keys every KeyReload until ctx ends, so that a rotated key is signed
// with and a pruned one forgotten. A failed reload keeps the keys loaded before.
func (r *KeyRing) Run(ctx context.Context) {
	if r.src == nil {
		return
	}
	t := time.NewTicker(KeyReload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Reload(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("reloading access-token keys", slog.Any("err", err))
			}
		}
	}
}

// cursorKey is the listing-cursor MAC key.
func (r *KeyRing) cursorKey() []byte { return r.cursor }

// cursorSeed returns the cluster's cursor secret, creating it on the first start.
func cursorSeed(ctx context.Context, src persistence.Secrets) ([]byte, error) {
	for range 2 {
		secrets, err := src.Secrets(ctx, SecretKindCursor)
		if err != nil {
			return nil, fmt.Errorf("loading the cursor secret: %w", err)
		}
		for _, s := range secrets {
			if s.ID == cursorSecretID {
				return s.Value, nil
			}
		}
		if _, err := src.CreateSecret(ctx, persistence.Secret{Kind: SecretKindCursor, ID: cursorSecretID, Value: randomKey()}); err != nil {
			return nil, fmt.Errorf("creating the cursor secret: %w", err)
		}
	}
	return nil, errors.New("loading the cursor secret: missing after creating it")
}

// deriveCursorKey derives the cursor MAC key with HKDF-SHA256, under its own label, so it
// never equals a token key even when the seed is the --jwt-secret.
func deriveCursorKey(seed []byte) []byte {
	key, err := hkdf.Key(sha256.New, seed, nil, "ordermesh listing cursor mac v1", keyBytes)
	if err != nil {
		panic(fmt.Sprintf("hkdf: %v", err)) // only for lengths beyond 255 hashes
	}
	return key
}

func randomKey() []byte {
	b := make([]byte, keyBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return b
}

// RotateKey adds the next signing key ("k0002" after "k0001"), created now. It signs
// tokens once it is KeyPropagation old. If another rotation created the same id at the
// same time, it fails and nothing is added twice.
func RotateKey(ctx context.Context, src persistence.Secrets, now time.Time) (persistence.Secret, error) {
	keys, err := src.Secrets(ctx, SecretKindJWT)
	if err != nil {
		return persistence.Secret{}, fmt.Errorf("rotating: %w", err)
	}
	last := 0
	for _, k := range keys {
		if n, err := strconv.Atoi(strings.TrimPrefix(k.ID, keyIDPrefix)); err == nil && strings.HasPrefix(k.ID, keyIDPrefix) && n > last {
			last = n
		}
	}
	key := persistence.Secret{Kind: SecretKindJWT, ID: fmt.Sprintf("%s%04d", keyIDPrefix, last+1), Value: randomKey(), CreatedAt: now.UTC()}
	created, err := src.CreateSecret(ctx, key)
	if err != nil {
		return persistence.Secret{}, fmt.Errorf("rotating: %w", err)
	}
	if !created {
		return persistence.Secret{}, fmt.Errorf("rotating: key %s was created by another rotation just now", key.ID)
	}
	return key, nil
}

// PruneKeys deletes the keys older than the newest one once the newest is retention old
// (see KeyRetention): by then every node signs with it and every token signed with an
// older key has expired. It returns the ids it deleted.
func PruneKeys(ctx context.Context, src persistence.Secrets, now time.Time, retention time.Duration) ([]string, error) {
	keys, err := src.Secrets(ctx, SecretKindJWT)
	if err != nil {
		return nil, fmt.Errorf("pruning keys: %w", err)
	}
	if len(keys) < 2 || now.Before(keys[len(keys)-1].CreatedAt.Add(retention)) {
		return nil, nil
	}
	var deleted []string
	for _, k := range keys[:len(keys)-1] {
		if err := src.DeleteSecret(ctx, SecretKindJWT, k.ID); err != nil {
			return deleted, fmt.Errorf("pruning keys: %w", err)
		}
		deleted = append(deleted, k.ID)
	}
	return deleted, nil
}

// KeyState describes one signing key for `ordermesh keys list`.
type KeyState struct {
	ID        string
	CreatedAt time.Time
	// State is "signing" (new tokens are signed with it), "pending" (newer, not yet
	// propagated) or "verifying" (older; kept for the tokens signed with it).
	State string
}

// ListKeys describes the signing keys in the store, oldest first, as nodes see them at
// now. Key values are never part of it.
func ListKeys(ctx context.Context, src persistence.Secrets, now time.Time) ([]KeyState, error) {
	keys, err := src.Secrets(ctx, SecretKindJWT)
	if err != nil {
		return nil, fmt.Errorf("listing keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	signing := signingKey(keys, now)
	out := make([]KeyState, len(keys))
	state := "verifying"
	for i, k := range keys {
		if k.ID == signing.ID {
			out[i], state = KeyState{ID: k.ID, CreatedAt: k.CreatedAt, State: "signing"}, "pending"
			continue
		}
		out[i] = KeyState{ID: k.ID, CreatedAt: k.CreatedAt, State: state}
	}
	return out, nil
}

// signingKey is the key new tokens are signed with (see persistence.InUse).
func signingKey(keys []persistence.Secret, now time.Time) persistence.Secret {
	return persistence.InUse(keys, func(k persistence.Secret) time.Time { return k.CreatedAt }, now, KeyPropagation)
}
