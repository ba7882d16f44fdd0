package bench

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestParseChaos(t *testing.T) {
	got, err := ParseChaos(" 30s:drain:2, 10s:kill:1 ,20s:add,1m30s:kill:0")
	if err != nil {
		t.Fatal(err)
	}
	want := []ChaosEvent{
		{At: 10 * time.Second, Action: ChaosKill, Node: 1},
		{At: 20 * time.Second, Action: ChaosAdd},
		{At: 30 * time.Second, Action: ChaosDrain, Node: 2},
		{At: 90 * time.Second, Action: ChaosKill, Node: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if evs, err := ParseChaos(""); err != nil || len(evs) != 0 {
		t.Fatalf("empty schedule: %v %v", evs, err)
	}
	for _, bad := range []string{"10s", "x:kill:1", "10s:kill", "10s:kill:a", "10s:kill:-1", "10s:add:1", "10s:explode:1", "-1s:add"} {
		if _, err := ParseChaos(bad); err == nil {
			t.Errorf("ParseChaos(%q) accepted", bad)
		}
	}
}

type recordingDriver struct {
	mu    sync.Mutex
	calls []string
}

func (d *recordingDriver) note(s string) { d.mu.Lock(); d.calls = append(d.calls, s); d.mu.Unlock() }
func (d *recordingDriver) Kill(_ context.Context, i int) error {
	d.note(fmt.Sprint("kill ", i))
	return nil
}
func (d *recordingDriver) Drain(_ context.Context, i int) error {
	d.note(fmt.Sprint("drain ", i))
	return fmt.Errorf("drain %d: %w", i, ErrUnsupported)
}
func (d *recordingDriver) Add(context.Context) (string, error) {
	d.note("add")
	return "http://127.0.0.1:9999", nil
}

func TestRunChaosFollowsTheSchedule(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	evs, _ := ParseChaos("10s:kill:1,20s:add,30s:drain:2")
	d := &recordingDriver{}
	var added []string
	log := runChaos(context.Background(), clock, start, evs, d, func(b string) { added = append(added, b) })
	if want := []string{"kill 1", "add", "drain 2"}; !reflect.DeepEqual(d.calls, want) {
		t.Fatalf("calls %v, want %v", d.calls, want)
	}
	if len(added) != 1 || added[0] != "http://127.0.0.1:9999" {
		t.Fatalf("added %v", added)
	}
	if len(log) != 3 || log[0].Done != 10*time.Second || log[2].Done != 30*time.Second || log[2].Error == "" || log[0].Error != "" {
		t.Fatalf("log %+v", log)
	}
}
