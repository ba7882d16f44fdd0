package order_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/ordermesh/ordermesh/actors/order"
)

// A lifecycle is a sequence of steps of 4 bytes each, applied to one order:
//
//	b0: command. 0xff: retry the last accepted command (same key and content). High bit set: a command legal in the current state (by index, low 7 bits),
//	    issued by a role allowed to; otherwise any command type (or an unknown one).
//	b1: low 6 bits: principal, for the unguided case: alice (the owner), bob, operator,
//	    admin, system. Bit 6: the command carries no OrderTimeout. High bit: before the
//	    command, the host records that the order's stock follows its current version (what
//	    a node does once it has sent the order's StockCommands).
//	b2: high bit: a fresh key; otherwise one of 8 shared keys (low 3 bits). Bits 3-4 pick
//	    the content: default, reason "r1", reason "r2", or (Create) no lines / reason "r3".
//	b3: minutes to advance the clock (low 6 bits); high bit: while PAYING, jump to the
//	    payment deadline exactly; while CREATED, to the order's expiry exactly.
const stepBytes = 4

var (
	lcPrincipals = []Principal{alice, bob, oper, adm, sys}
	lcCommands   = []CommandType{CmdCreate, CmdSubmitPayment, CmdConfirmPayment, CmdFailPayment, CmdExpirePayment,
		CmdCancel, CmdShip, CmdDeliver, CmdRefund, "Teleport", CmdConfirmStock, CmdRejectStock, CmdExpire}
)

const lcOrderID = "o_lifecycle"

var lcLines = testLines()

// lcKeys are the shared keys, lcReasons the reasons of content variants 1 to 3.
var (
	lcKeys    = []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
	lcReasons = []string{"", "r1", "r2", "r3"}
)

// modelKey is the reference model's memory of one accepted command.
type modelKey struct {
	key, content string
	cmd          CommandType
	version      uint64
	status       Status
	at, deadline time.Time
}

// model is an independent reference implementation of the design's rules, written from the
// hand-made design table, used as the oracle for Decide.
type model struct {
	status    Status
	version   uint64
	customer  string
	deadline  time.Time
	createdAt time.Time
	updatedAt time.Time
	expiresAt time.Time // set by the reservation, kept for ever
	rejection string
	// stockVersion is the version whose stock the order knows to be applied: set by the
	// saga's outcome (an event) or by the host (hostStock, not in any event).
	stockVersion, eventStockVersion uint64
	accepted                        []modelKey // every accepted command, oldest first
}

// modelStock is what each status asks of the stock of the order's lines, written from the
// design independently of StockCommands.
var modelStock = map[Status][]StockCommand{
	StatusReserving: {StockReserve},
	StatusPaid:      {StockSell},
	StatusShipped:   {StockSell, StockShip},
	StatusDelivered: {StockSell, StockShip},
	StatusClosed:    {StockRelease},
	StatusRejected:  {StockRelease},
	StatusRefunded:  {StockSell, StockRefund},
}

// synced: the order's stock follows its status.
func (m *model) synced() bool {
	return len(modelStock[m.status]) == 0 || m.stockVersion >= m.version
}

// due is when the node must next act on the order: soon while a reservation is open or
// the stock lags behind, else at the end of the payment window or the unpaid order's expiry.
func (m *model) due() time.Time {
	if m.status == StatusReserving || !m.synced() {
		return m.updatedAt.Add(StockRetry) // the saga or the stock still needs the node
	}
	return map[Status]time.Time{StatusPaying: m.deadline, StatusCreated: m.expiresAt}[m.status]
}

// kept is what the order remembers: the create key and the newest KeysKept-1 others.
func (m *model) kept() []modelKey {
	if len(m.accepted) <= KeysKept {
		return m.accepted
	}
	return append([]modelKey{m.accepted[0]}, m.accepted[len(m.accepted)-(KeysKept-1):]...)
}

// find returns what key did, as of time at: a key the order keeps is honoured for ever;
// an older one (which the host looks up in the events, newest use first) for KeyWindow.
func (m *model) find(key string, at time.Time) (modelKey, bool) {
	if len(m.accepted) > 0 && m.accepted[0].key == key {
		return m.accepted[0], true
	}
	for i := max(1, len(m.accepted)-(KeysKept-1)); i < len(m.accepted); i++ {
		if m.accepted[i].key == key {
			return m.accepted[i], true
		}
	}
	for i := len(m.accepted) - 1; i >= 0; i-- {
		if k := m.accepted[i]; k.key == key {
			if at.Sub(k.at) < KeyWindow {
				return k, true
			}
			return modelKey{}, false
		}
	}
	return modelKey{}, false
}

// expect returns what c (with the given content) must do: an error code, or a replay of a
// remembered key, or an event leading to state to.
func (m *model) expect(c Command, content string, validLines bool) (code Code, replay *modelKey, evt EventType, to Status) {
	row, ok := designFor(c.Type)
	if !ok {
		return CodeInvalidRequest, nil, "", ""
	}
	if c.Type == CmdConfirmStock && c.OrderTimeout <= 0 {
		return CodeInvalidRequest, nil, "", ""
	}
	if !slices.Contains(row.roles, c.By.Role) {
		return CodeForbidden, nil, "", ""
	}
	if c.Type == CmdCreate {
		if m.version > 0 {
			if k, ok := m.find(c.Key, c.At); ok && k.cmd == CmdCreate && m.customer == c.By.Subject {
				if k.content != content {
					return CodeKeyReused, nil, "", ""
				}
				if m.status == StatusRejected {
					return CodeOutOfStock, nil, "", ""
				}
				return CodeOK, &k, "", ""
			}
			return CodeAlreadyExists, nil, "", ""
		}
		if !validLines {
			return CodeValidation, nil, "", ""
		}
		return CodeOK, nil, row.evt, row.to
	}
	if m.version == 0 || (c.By.Role == RoleShopper && c.By.Subject != m.customer) {
		return CodeNotFound, nil, "", ""
	}
	if k, ok := m.find(c.Key, c.At); ok {
		if k.cmd != c.Type || k.content != content {
			return CodeKeyReused, nil, "", ""
		}
		return CodeOK, &k, "", ""
	}
	if !slices.Contains(row.from, m.status) {
		return CodeIllegalTransition, nil, "", ""
	}
	if c.Type == CmdExpirePayment && c.At.Before(m.deadline) {
		return CodeIllegalTransition, nil, "", ""
	}
	if c.Type == CmdExpire && c.At.Before(m.expiresAt) {
		return CodeIllegalTransition, nil, "", ""
	}
	return CodeOK, nil, row.evt, row.to
}

func (m *model) accept(c Command, content string, to Status) {
	if c.Type == CmdCreate {
		m.customer, m.createdAt = c.By.Subject, c.At
	}
	prev, wasSynced := m.status, m.synced()
	m.status, m.version, m.deadline, m.updatedAt = to, m.version+1, time.Time{}, c.At
	if wasSynced && prev != StatusReserving && len(modelStock[to]) > 0 && slices.Equal(modelStock[prev], modelStock[to]) {
		// The stock is where the new status wants it already.
		m.stockVersion = m.version
	}
	switch c.Type {
	case CmdSubmitPayment:
		m.deadline = c.At.Add(c.PaymentTimeout)
	case CmdConfirmStock:
		// The unpaid order expires OrderTimeout after its creation; the create now answers
		// with the order as the reservation left it.
		m.expiresAt = m.createdAt.Add(c.OrderTimeout)
		m.stockVersion, m.eventStockVersion = m.version, m.version
		m.accepted[0].version, m.accepted[0].status, m.accepted[0].at = m.version, to, c.At
	case CmdRejectStock:
		m.rejection = c.Reason
		m.stockVersion, m.eventStockVersion = m.version, m.version
	}
	m.accepted = append(m.accepted, modelKey{key: c.Key, content: content, cmd: c.Type, version: m.version,
		status: to, at: c.At, deadline: m.deadline})
}

// hostStock is the host recording that the order's stock follows its current version.
func (m *model) hostStock() { m.stockVersion = m.version }

// lifecycle applies steps to one order through Decide and Evolve and checks the invariants
// after each of them.
type lifecycle struct {
	tb      testing.TB
	o       Order
	m       model
	history []Event
	at      time.Time
	steps   []byte
	stats   *lifecycleStats

	pathChecked int    // events of history already validated as a path
	pathEnd     Status // where they lead

	last        *Command // the last accepted command, for retries
	lastContent string
	lastValid   bool
}

type lifecycleStats struct {
	events   map[EventType]int
	codes    map[Code]int
	replays  int
	lookups  int // keys found in the history because the order forgot them
	synced   int // host stock records
	maxKeys  int
	maxSteps int
}

func newStats() *lifecycleStats {
	return &lifecycleStats{events: map[EventType]int{}, codes: map[Code]int{}}
}

func newLifecycle(tb testing.TB, stats *lifecycleStats) *lifecycle {
	if stats == nil {
		stats = newStats()
	}
	return &lifecycle{tb: tb, at: t0, stats: stats}
}

func (l *lifecycle) fatalf(format string, args ...any) {
	l.tb.Helper()
	l.tb.Fatalf("after %d steps (fuzz input %q, order %s@%d): %s", len(l.steps)/stepBytes,
		hex.EncodeToString(l.steps), l.o.Status, l.o.Version, fmt.Sprintf(format, args...))
}

// command turns one step into a command, and the model's name for its content.
func (l *lifecycle) command(s [stepBytes]byte) (Command, string, bool) {
	n := len(l.steps) / stepBytes
	// Time.
	if s[3]&0x80 != 0 && l.o.Status == StatusPaying && l.o.PaymentDeadline.After(l.at) {
		l.at = l.o.PaymentDeadline
	} else if s[3]&0x80 != 0 && l.o.Status == StatusCreated && l.o.ExpiresAt.After(l.at) {
		l.at = l.o.ExpiresAt
	} else {
		l.at = l.at.Add(time.Duration(s[3]&0x3f) * time.Minute)
	}
	if s[0] == 0xff && l.last != nil {
		c := *l.last
		c.At = l.at
		return c, l.lastContent, l.lastValid
	}
	// Command and principal.
	typ, by := lcCommands[int(s[0])%len(lcCommands)], lcPrincipals[int(s[1]&0x3f)%len(lcPrincipals)]
	if s[0]&0x80 != 0 {
		var legal []designRow
		for _, d := range design {
			if slices.Contains(d.from, l.o.Status) {
				legal = append(legal, d)
			}
		}
		if len(legal) > 0 {
			d := legal[int(s[0]&0x7f)%len(legal)]
			typ = d.cmd
			switch r := d.roles[int(s[1]&0x3f)%len(d.roles)]; r {
			case RoleShopper:
				by = alice
			case RoleOperator:
				by = oper
			case RoleAdmin:
				by = adm
			default:
				by = sys
			}
		}
	}
	// Key and content.
	key := lcKeys[s[2]&7]
	if s[2]&0x80 != 0 {
		key = "fresh-" + strconv.Itoa(n)
	}
	c := Command{Type: typ, OrderID: lcOrderID, Key: key, By: by, At: l.at, PaymentTimeout: payTimeout, OrderTimeout: orderTimeout}
	if s[1]&0x40 != 0 {
		c.OrderTimeout = 0
	}
	variant := (s[2] >> 3) & 3
	valid := true
	switch {
	case variant == 3 && typ == CmdCreate:
		valid = false
	default:
		c.Reason = lcReasons[variant]
	}
	if typ == CmdCreate && valid {
		c.Lines, c.Currency = testLines(), "EUR"
	}
	// The caller is part of the content: a key is one caller's. System principals are
	// one caller (every timer may retry the expiry another started).
	caller := by.Subject + "/" + string(by.Role)
	if by.Role == RoleSystem {
		caller = string(by.Role)
	}
	content := string(typ) + "|" + strconv.FormatBool(valid) + "|" + c.Reason + "|" + caller
	return c, content, valid
}

// lookup is what a host does for a key the order may have forgotten: the newest event
// with that key, through its stored payload, as Command.Seen.
func (l *lifecycle) lookup(key string) *KeyResult {
	for i := len(l.history) - 1; i >= 0; i-- {
		if e := l.history[i]; e.Key == key {
			payload, err := json.Marshal(PayloadOf(e))
			if err != nil {
				l.fatalf("encoding payload: %v", err)
			}
			r, err := KeyResultOf(e.Key, e.Type, e.Version, e.To, e.At, payload)
			if err != nil {
				l.fatalf("KeyResultOf: %v", err)
			}
			return &r
		}
	}
	return nil
}

func (l *lifecycle) step(s [stepBytes]byte) {
	c, content, valid := l.command(s)
	c.Seen = nil
	if ValidKey(c.Key) && l.o.NeedsKeyLookup(c.Key) {
		c.Seen = l.lookup(c.Key)
		if c.Seen != nil {
			l.stats.lookups++
		}
	}
	l.steps = append(l.steps, s[:]...)
	l.stats.maxSteps = max(l.stats.maxSteps, len(l.steps)/stepBytes)
	if s[1]&0x80 != 0 && l.o.Exists() {
		// The host has sent the order's StockCommands: it records so (not an event).
		l.o.StockVersion = l.o.Version
		l.m.hostStock()
		l.stats.synced++
		l.check()
	}

	wantCode, wantReplay, wantEvt, wantTo := l.m.expect(c, content, valid)
	before := deepCopyOrder(l.o)
	d, err := Decide(&l.o, c)
	if !sameOrder(before, l.o) {
		l.fatalf("Decide(%+v) modified the order", c)
	}
	code := ErrorCode(err)
	l.stats.codes[code]++
	if code != wantCode {
		l.fatalf("Decide(%s by %s/%s key %s): code %d (%v), model says %d", c.Type, c.By.Role, c.By.Subject, c.Key, code, err, wantCode)
	}
	if err != nil {
		if code == CodeInternal || d.Replay != nil || d.Events != nil || ErrorMessage(err) == "" {
			l.fatalf("error %v with decision %+v", err, d)
		}
		if code == CodeOutOfStock && l.m.rejection != "" && ErrorMessage(err) != l.m.rejection {
			l.fatalf("a retried create of a rejected order says %q, want the rejection %q", ErrorMessage(err), l.m.rejection)
		}
		return // the order is unchanged (checked above), so its invariants still hold
	}
	if d.Replay != nil {
		l.stats.replays++
		r := *d.Replay
		if len(d.Events) != 0 {
			l.fatalf("a replay produced events: %+v", d.Events)
		}
		if wantReplay == nil {
			l.fatalf("Decide replayed %+v, model expected event %s", r, wantEvt)
		}
		if r.Key != c.Key || r.Version != wantReplay.version || r.Status != wantReplay.status ||
			!r.At.Equal(wantReplay.at) || !r.Deadline.Equal(wantReplay.deadline) || r.Command != wantReplay.cmd {
			l.fatalf("replay %+v, model remembers %+v", r, *wantReplay)
		}
		if v := l.o.ViewAt(r); v.Status != r.Status || v.Version != r.Version || !v.UpdatedAt.Equal(r.At) {
			l.fatalf("ViewAt(%+v) = %+v", r, v)
		}
		return
	}
	if wantReplay != nil {
		l.fatalf("Decide produced %+v, model expected a replay of %+v", d.Events, *wantReplay)
	}
	if len(d.Events) != 1 {
		l.fatalf("Decide produced %d events", len(d.Events))
	}
	e := d.Events[0]
	if e.Type != wantEvt || e.To != wantTo {
		l.fatalf("event %s -> %s, model says %s -> %s", e.Type, e.To, wantEvt, wantTo)
	}
	if e.From != l.o.Status || e.Version != l.o.Version+1 || !Legal(e.From, e.Type, e.To) {
		l.fatalf("event %s %s -> %s at version %d is not a legal next step", e.Type, e.From, e.To, e.Version)
	}
	if wantExp := l.m.createdAt.Add(c.OrderTimeout); (e.Type == EvtStockReserved) != !e.ExpiresAt.IsZero() ||
		(e.Type == EvtStockReserved && !e.ExpiresAt.Equal(wantExp)) {
		l.fatalf("event %s carries ExpiresAt %v (created %v, order timeout %v)", e.Type, e.ExpiresAt, l.m.createdAt, c.OrderTimeout)
	}
	l.stats.events[e.Type]++
	l.last, l.lastContent, l.lastValid = &c, content, valid
	l.m.accept(c, content, e.To)
	l.o = Evolve(l.o, e)
	l.history = append(l.history, e)
	l.check()
}

// check verifies the invariants of the order against its history.
func (l *lifecycle) check() {
	o := l.o
	if o.Version != uint64(len(l.history)) {
		l.fatalf("version %d after %d events", o.Version, len(l.history))
	}
	// The history is append-only: validate the events not validated yet.
	from := l.pathEnd
	for i := l.pathChecked; i < len(l.history); i++ {
		e := l.history[i]
		if e.Version != uint64(i+1) {
			l.fatalf("event %d has version %d: versions must run 1, 2, 3, ...", i, e.Version)
		}
		if e.From != from || !Legal(from, e.Type, e.To) {
			l.fatalf("history is not a path through the table at version %d: %s -(%s)-> %s", e.Version, from, e.Type, e.To)
		}
		if i > 0 && e.At.Before(l.history[i-1].At) {
			l.fatalf("history goes back in time at version %d", e.Version)
		}
		from = e.To
	}
	l.pathChecked, l.pathEnd = len(l.history), from
	if o.Status != from {
		l.fatalf("status %s, history ends in %s", o.Status, from)
	}
	if o.Status != l.m.status || o.Version != l.m.version {
		l.fatalf("order %s@%d, model %s@%d", o.Status, o.Version, l.m.status, l.m.version)
	}
	if !o.Exists() {
		if len(o.Keys) != 0 || o.Status != StatusNone {
			l.fatalf("an order that does not exist has state: %+v", o)
		}
		return
	}
	if !slices.Contains(Statuses, o.Status) {
		l.fatalf("status %q is not in Statuses", o.Status)
	}
	if o.Customer != l.m.customer || o.ID != lcOrderID || o.Total != testTotal || !slices.Equal(o.Lines, lcLines) {
		l.fatalf("creation fields changed: %+v", o)
	}
	if (o.Status == StatusPaying) == o.PaymentDeadline.IsZero() || !o.PaymentDeadline.Equal(l.m.deadline) {
		l.fatalf("payment deadline %v in %s (model %v)", o.PaymentDeadline, o.Status, l.m.deadline)
	}
	if !o.CreatedAt.Equal(l.m.createdAt) || !o.UpdatedAt.Equal(l.m.updatedAt) || !o.ExpiresAt.Equal(l.m.expiresAt) ||
		o.Rejection != l.m.rejection || o.StockVersion != l.m.stockVersion {
		l.fatalf("order created %v updated %v expires %v rejection %q stock v%d; model %v %v %v %q v%d",
			o.CreatedAt, o.UpdatedAt, o.ExpiresAt, o.Rejection, o.StockVersion,
			l.m.createdAt, l.m.updatedAt, l.m.expiresAt, l.m.rejection, l.m.stockVersion)
	}
	if (o.Status == StatusCreated || o.Status == StatusPaying || o.Status == StatusReserving) == (o.Rejection != "") && o.Rejection != "" {
		l.fatalf("a %s order has a rejection %q", o.Status, o.Rejection)
	}
	if v := o.View(); (o.Status == StatusCreated) == v.ExpiresAt.IsZero() || (o.Status == StatusCreated && !v.ExpiresAt.Equal(l.m.expiresAt)) {
		l.fatalf("a %s order shows expires_at %v (model %v)", o.Status, v.ExpiresAt, l.m.expiresAt)
	}
	if !slices.Equal(StockCommands(o.Status), modelStock[o.Status]) {
		l.fatalf("StockCommands(%s) = %v, model %v", o.Status, StockCommands(o.Status), modelStock[o.Status])
	}
	if o.StockSynced() != l.m.synced() || !o.Deadline().Equal(l.m.due()) {
		l.fatalf("synced %v, deadline %v; model %v, %v", o.StockSynced(), o.Deadline(), l.m.synced(), l.m.due())
	}
	if len(o.Keys) > KeysKept {
		l.fatalf("%d keys kept, at most %d allowed", len(o.Keys), KeysKept)
	}
	l.stats.maxKeys = max(l.stats.maxKeys, len(o.Keys))
	kept := l.m.kept()
	if len(o.Keys) != len(kept) {
		l.fatalf("%d keys kept, model keeps %d", len(o.Keys), len(kept))
	}
	if o.Keys[0].Key != l.history[0].Key || o.Keys[0].Command != CmdCreate || o.Keys[0].Fingerprint != l.history[0].Fingerprint {
		l.fatalf("the create key is gone: Keys[0] = %+v", o.Keys[0])
	}
	for i, k := range o.Keys {
		if k.Key != kept[i].key || k.Version != kept[i].version || k.Status != kept[i].status || !k.At.Equal(kept[i].at) {
			l.fatalf("Keys[%d] = %q@%d %s at %v, model keeps %q@%d %s at %v", i, k.Key, k.Version, k.Status, k.At,
				kept[i].key, kept[i].version, kept[i].status, kept[i].at)
		}
		// A key answers with the event it recorded; the create key with the order as its
		// reservation left it, once that is known.
		e := l.history[k.Version-1]
		cmd, fp := CommandType(""), e.Fingerprint
		if t, ok := TransitionForEvent(e.Type); ok {
			cmd = t.Command
		}
		if i == 0 {
			cmd, fp = CmdCreate, l.history[0].Fingerprint
			if e.Type != EvtCreated && e.Type != EvtStockReserved {
				l.fatalf("the create answers with event %s", e.Type)
			}
		} else if k.Key != e.Key {
			l.fatalf("Keys[%d] = %+v does not match event %+v", i, k, e)
		}
		if k.Command != cmd || k.Fingerprint != fp || k.Status != e.To ||
			!k.At.Equal(e.At) || !k.Deadline.Equal(e.PaymentDeadline) {
			l.fatalf("Keys[%d] = %+v does not match event %+v", i, k, e)
		}
	}
}

// finish checks what only makes sense at the end: the order is the fold of its history
// (the snapshot round trip is tested with the codec, in package actors).
func (l *lifecycle) finish() {
	l.tb.Helper()
	var folded Order
	for _, e := range l.history {
		folded = Evolve(folded, e)
	}
	// What the host recorded of the stock is in no event.
	if folded.StockVersion != l.m.eventStockVersion {
		l.fatalf("folding the history gives stock version %d, the events set %d", folded.StockVersion, l.m.eventStockVersion)
	}
	folded.StockVersion = l.o.StockVersion
	if !reflect.DeepEqual(folded, l.o) {
		l.fatalf("folding the history gives %+v, want %+v", folded, l.o)
	}
}

// sameOrder is a fast reflect.DeepEqual for orders (the checker calls it on every step),
// comparing times by representation, as DeepEqual does.
func sameOrder(a, b Order) bool {
	return a.ID == b.ID && a.Customer == b.Customer && a.Status == b.Status && a.Version == b.Version &&
		a.Currency == b.Currency && a.Total == b.Total && a.PaymentDeadline == b.PaymentDeadline &&
		a.ExpiresAt == b.ExpiresAt && a.Rejection == b.Rejection && a.StockVersion == b.StockVersion &&
		a.CreatedAt == b.CreatedAt && a.UpdatedAt == b.UpdatedAt &&
		(a.Lines == nil) == (b.Lines == nil) && slices.Equal(a.Lines, b.Lines) &&
		(a.Keys == nil) == (b.Keys == nil) && slices.Equal(a.Keys, b.Keys)
}

func runLifecycle(tb testing.TB, data []byte, stats *lifecycleStats) {
	tb.Helper()
	l := newLifecycle(tb, stats)
	l.check()
	for len(data) >= stepBytes {
		l.step([stepBytes]byte(data[:stepBytes]))
		data = data[stepBytes:]
	}
	l.finish()
}

// seedLifecycles are readable fuzz seeds: each string is a list of steps "b0.b1.b2.b3".
var seedLifecycles = []string{
	// create, confirm stock, pay, confirm, ship, deliver, refund; fresh keys; the host
	// records the stock after the payment and after the refund
	"80.00.80.01 80.00.80.01 81.00.80.01 80.00.80.01 80.80.80.01 80.00.80.01 80.00.80.01 01.80.80.01",
	// create, confirm stock, pay, expire at the deadline exactly, then the timer fires again
	"80.00.80.01 80.00.80.01 81.00.80.01 82.00.01.80 ff.00.00.01",
	// create, confirm stock, pay, expire too early (409), fail, pay again, cancel
	"80.00.80.01 80.00.80.01 81.00.80.01 04.04.80.01 81.00.80.01 81.00.80.01 83.00.80.01",
	// create (k0), reject for want of stock ("r1"), the create retried (40902), pay (409)
	"80.00.00.01 81.00.88.01 00.00.00.01 01.00.80.01",
	// create (k0), rejected with no message, the create retried (40902)
	"80.00.00.01 81.00.80.01 00.00.00.01",
	// create, confirm stock, expire too early (409), at the expiry exactly, the node again
	"80.00.80.01 80.00.80.01 80.04.80.01 80.00.81.80 ff.00.00.01 0c.04.80.3f",
	// confirm stock with no order timeout (400), then with one; create retried (v2 CREATED)
	"80.00.00.01 80.40.80.01 80.00.80.01 00.00.00.01",
	// the host records the reservation before ConfirmStock (still due), then confirms
	"80.00.80.01 01.80.80.01 80.00.80.01",
	// the node's commands by the wrong roles and in the wrong states
	"0a.00.80.01 80.00.80.01 0a.02.80.01 0b.03.80.01 0c.00.80.01 0a.04.80.01 0b.04.80.01",
	// same key reused for different commands and contents, other shopper, wrong roles
	"00.00.00.00 01.00.00.00 00.00.08.00 01.01.01.00 06.00.02.00 05.01.03.00 09.02.04.00",
	// create with no lines (422), then with lines, then replay the create
	"00.00.18.00 00.00.00.00 00.00.00.05",
}

func parseSteps(tb testing.TB, s string) []byte {
	var out []byte
	for _, st := range strings.Fields(s) {
		b, err := hex.DecodeString(strings.ReplaceAll(st, ".", ""))
		if err != nil || len(b) != stepBytes {
			tb.Fatalf("bad seed step %q", st)
		}
		out = append(out, b...)
	}
	return out
}

func FuzzLifecycle(f *testing.F) {
	for _, s := range seedLifecycles {
		f.Add(parseSteps(f, s))
	}
	for seed := range uint64(8) {
		f.Add(randomSteps(rand.New(rand.NewPCG(seed, 1)), 0))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 400*stepBytes {
			data = data[:400*stepBytes]
		}
		runLifecycle(t, data, nil)
	})
}

// randomSteps returns 1 to 120 random steps; mode 1 favours legal commands and fresh keys.
func randomSteps(r *rand.Rand, mode int) []byte {
	n := 1 + r.IntN(120)
	out := make([]byte, 0, n*stepBytes)
	for range n {
		s := [stepBytes]byte{byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(256))}
		if mode == 1 { // mostly legal commands with fresh keys, small time steps
			if r.IntN(10) > 0 {
				s[0] |= 0x80
			}
			if r.IntN(10) > 2 {
				s[2] |= 0x80
			}
			s[3] &= 0x87
			if r.IntN(6) == 0 {
				s[0] = 0xff
			}
		}
		out = append(out, s[:]...)
	}
	return out
}

// longPayFailLoop creates an order and cycles pay/fail more than KeysKept times, mixing in
// retries of old keys, so that key eviction and the lookup of evicted keys are
// exercised; then it ends randomly. The first pay and fail use shared keys (k3, k4), so
// the retries may hit them after the order forgot them.
func longPayFailLoop(r *rand.Rand) []byte {
	steps := []byte{0x80, 0x00, 0x80, 0x01, 0x80, 0x00, 0x80, 0x01} // create, confirm stock
	for i := range KeysKept + 10 + r.IntN(40) {
		key := byte(0x80) // fresh
		if i < 2 {
			key = byte(3 + i)
		}
		if i%2 == 0 {
			steps = append(steps, 0x81, 0x00, key, 0x01) // SubmitPayment (index 1 from CREATED)
		} else {
			steps = append(steps, 0x81, 0x00, key, 0x01) // FailPayment (index 1 from PAYING)
		}
		if r.IntN(8) == 0 {
			steps = append(steps, byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(8)), 0x00) // a retry with a shared key
		}
	}
	return append(steps, randomSteps(r, 1)...)
}

// rejectedRetries creates an order with a shared key, has its stock refused, and then
// sends creates (and retries of them) from the owner and others with shared keys and
// contents: a retried create of the rejected order must get the refusal again, anything
// else its own answer.
func rejectedRetries(r *rand.Rand) []byte {
	key := byte(r.UintN(8))
	steps := []byte{0x80, 0x00, key | byte(r.UintN(4))<<3, 0x01, 0x81, 0x00, 0x80 | byte(r.UintN(3))<<3, 0x01}
	for range 1 + r.IntN(20) {
		s := [stepBytes]byte{byte(13 * r.UintN(10)), byte(r.UintN(2)), byte(r.UintN(32)), byte(r.UintN(4))}
		if r.IntN(3) == 0 {
			s[2] = key // the create's own key, default content
		}
		steps = append(steps, s[:]...)
	}
	return append(steps, randomSteps(r, 0)...)
}

// TestRandomLifecycles runs the lifecycle checker over 2,000 seeded random sequences, so
// the properties are checked on every go test run, and checks that the runs covered every
// event, every refusal and key eviction.
func TestRandomLifecycles(t *testing.T) {
	const runs, shards = 2000, 4
	var all [shards]*lifecycleStats
	t.Run("shards", func(t *testing.T) {
		for shard := range shards {
			stats := newStats()
			all[shard] = stats
			t.Run(strconv.Itoa(shard), func(t *testing.T) {
				t.Parallel()
				for seed := uint64(shard); seed < runs; seed += shards {
					r := rand.New(rand.NewPCG(seed, 0x0de4))
					var data []byte
					switch seed % 10 {
					case 0:
						data = longPayFailLoop(r)
					case 1, 2, 3, 4, 5:
						data = randomSteps(r, 1)
					case 6:
						data = rejectedRetries(r)
					default:
						data = randomSteps(r, 0)
					}
					runLifecycle(t, data, stats)
				}
			})
		}
	})
	stats := newStats()
	for _, s := range all {
		for e, n := range s.events {
			stats.events[e] += n
		}
		for c, n := range s.codes {
			stats.codes[c] += n
		}
		stats.replays += s.replays
		stats.lookups += s.lookups
		stats.synced += s.synced
		stats.maxKeys = max(stats.maxKeys, s.maxKeys)
	}
	for _, e := range allEvents {
		if stats.events[e] == 0 {
			t.Errorf("no run produced %s", e)
		}
	}
	for _, c := range []Code{CodeOK, CodeInvalidRequest, CodeForbidden, CodeNotFound, CodeKeyReused,
		CodeIllegalTransition, CodeAlreadyExists, CodeValidation, CodeOutOfStock} {
		if stats.codes[c] == 0 {
			t.Errorf("no run got code %d", c)
		}
	}
	if stats.replays == 0 || stats.maxKeys != KeysKept || stats.lookups == 0 || stats.synced == 0 {
		t.Errorf("replays %d, at most %d keys kept in any run (want %d), %d forgotten keys looked up",
			stats.replays, stats.maxKeys, KeysKept, stats.lookups)
	}
	t.Logf("%d runs: events %v, codes %v, %d replays, %d lookups", runs, stats.events, stats.codes, stats.replays, stats.lookups)
}
