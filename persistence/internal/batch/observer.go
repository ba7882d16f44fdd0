package batch

import (
	"sync/atomic"
	"time"

	"github.com/ordermesh/ordermesh/persistence"
)

// Observer holds a store's persistence.BatchObserver; it may be set while the store runs.
type Observer struct {
	f atomic.Pointer[persistence.BatchObserver]
}

// Set installs f (nil removes it).
func (o *Observer) Set(f persistence.BatchObserver) {
	if f == nil {
		o.f.Store(nil)
		return
	}
	o.f.Store(&f)
}

// Observe reports one batch of n writes that started at start.
func (o *Observer) Observe(n int, start time.Time, err error) {
	if f := o.f.Load(); f != nil {
		(*f)(n, time.Since(start), err)
	}
}
