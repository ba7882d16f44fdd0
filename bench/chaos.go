package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ChaosDriver changes the cluster under load. Node indexes count the targets in the order
// the balancer knows them: the --targets list, then nodes added by Add.
type ChaosDriver interface {
	// Kill stops node i abruptly (SIGKILL): in-flight requests on it fail.
	Kill(ctx context.Context, i int) error
	// Add starts a new node that joins the cluster and returns its base URL.
	Add(ctx context.Context) (string, error)
	// Drain asks node i to leave gracefully.
	Drain(ctx context.Context, i int) error
}

// ErrUnsupported is returned by a driver for an action it cannot perform.
var ErrUnsupported = errors.New("not supported by this chaos driver")

// Chaos actions.
const (
	ChaosKill  = "kill"
	ChaosAdd   = "add"
	ChaosDrain = "drain"
)

// ChaosEvent is one scheduled action; Node is unused for add.
type ChaosEvent struct {
	At     time.Duration `json:"at"`
	Action string        `json:"action"`
	Node   int           `json:"node"`
}

// ParseChaos parses "10s:kill:1,20s:add,30s:drain:2" into events sorted by time.
// An empty string is an empty schedule.
func ParseChaos(s string) ([]ChaosEvent, error) {
	var out []ChaosEvent
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, ":")
		at, err := time.ParseDuration(f[0])
		if err != nil || at < 0 {
			return nil, fmt.Errorf("chaos %q: bad time %q", part, f[0])
		}
		ev := ChaosEvent{At: at}
		if len(f) < 2 {
			return nil, fmt.Errorf("chaos %q: missing action", part)
		}
		ev.Action = f[1]
		switch ev.Action {
		case ChaosAdd:
			if len(f) != 2 {
				return nil, fmt.Errorf("chaos %q: add takes no node", part)
			}
		case ChaosKill, ChaosDrain:
			if len(f) != 3 {
				return nil, fmt.Errorf("chaos %q: %s needs a node index", part, ev.Action)
			}
			n, err := strconv.Atoi(f[2])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("chaos %q: bad node index %q", part, f[2])
			}
			ev.Node = n
		default:
			return nil, fmt.Errorf("chaos %q: unknown action %q (want kill, add or drain)", part, ev.Action)
		}
		out = append(out, ev)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out, nil
}

// ChaosLog is what happened to one scheduled event.
type ChaosLog struct {
	ChaosEvent
	Done  time.Duration `json:"done"` // since the start of the run
	Error string        `json:"error,omitempty"`
}

// runChaos executes events at start+At on clock until ctx is done; nodes added are given
// to onAdd so the balancer sends them traffic. It returns what it did.
func runChaos(ctx context.Context, clock Clock, start time.Time, events []ChaosEvent, d ChaosDriver, onAdd func(string)) []ChaosLog {
	var out []ChaosLog
	for _, ev := range events {
		if clock.SleepUntil(ctx, start.Add(ev.At)) != nil {
			return out
		}
		var err error
		switch ev.Action {
		case ChaosKill:
			err = d.Kill(ctx, ev.Node)
		case ChaosDrain:
			err = d.Drain(ctx, ev.Node)
		case ChaosAdd:
			var base string
			if base, err = d.Add(ctx); err == nil {
				onAdd(base)
			}
		}
		l := ChaosLog{ChaosEvent: ev, Done: clock.Now().Sub(start)}
		if err != nil {
			l.Error = err.Error()
		}
		out = append(out, l)
	}
	return out
}

// APIDriver drains nodes through the public API and cannot kill or add them: that needs
// control of processes, which only whoever started them has.
type APIDriver struct {
	Balancer *Balancer
	Operator *Account
}

// Kill is not possible through the API.
func (APIDriver) Kill(context.Context, int) error { return fmt.Errorf("kill: %w", ErrUnsupported) }

// Add is not possible through the API.
func (APIDriver) Add(context.Context) (string, error) {
	return "", fmt.Errorf("add: %w", ErrUnsupported)
}

// Drain finds node i's member id from its own GET /api/v1/cluster and asks it to drain.
func (d APIDriver) Drain(ctx context.Context, i int) error {
	targets := d.Balancer.Targets()
	if i >= len(targets) {
		return fmt.Errorf("drain node %d: only %d targets", i, len(targets))
	}
	base := targets[i]
	hc := newHTTPClient(1, 5*time.Second)
	resp := send(ctx, hc, base, Request{Method: http.MethodGet, Path: "/api/v1/cluster", Token: d.Operator.Token()})
	if !resp.OK() {
		return fmt.Errorf("drain node %d: reading cluster: %s", i, describe(resp))
	}
	var st struct {
		Self string `json:"self"`
	}
	if err := json.Unmarshal(resp.Data, &st); err != nil || st.Self == "" {
		return fmt.Errorf("drain node %d: no member id in cluster view", i)
	}
	resp = send(ctx, hc, base, Request{Method: http.MethodPost, Path: "/api/v1/cluster/nodes/" + url.PathEscape(st.Self) + "/drain",
		Token: d.Operator.Token(), Key: "bench-drain-" + st.Self})
	if !resp.OK() {
		return fmt.Errorf("drain node %d (%s): %s", i, st.Self, describe(resp))
	}
	return nil
}
