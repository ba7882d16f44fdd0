package cluster

import "time"

// MemberState is where a node is in its life. Only active members own orders.
type MemberState string

// The member states, in order.
const (
	StateJoining MemberState = "joining" // gossiping, not yet serving grains
	StateActive  MemberState = "active"  // owns its share of the orders
	StateLeaving MemberState = "leaving" // draining: owns nothing, finishing in-flight work
)

// MemberInfo is what a node tells the cluster about itself (memberlist node metadata).
type MemberInfo struct {
	ID      string      `json:"id"`      // actor system id: new for every process
	Gossip  string      `json:"gossip"`  // host:port of memberlist
	Remote  string      `json:"remote"`  // host:port of actor remoting
	HTTP    string      `json:"http"`    // host:port of the edge
	State   MemberState `json:"state"`   // joining, active, leaving
	Kinds   []string    `json:"kinds"`   // grain kinds it hosts
	Started time.Time   `json:"started"` // when the process started
}

// View is one node's picture of the cluster at one moment.
type View struct {
	Members []MemberInfo // alive members, sorted by ID
	// Version counts the changes this node has seen; it only grows.
	Version uint64
	// Hash identifies the membership (ids and states): nodes that agree on the cluster
	// have the same Hash.
	Hash uint64

	active []MemberInfo // the active members, computed once by newView
}

// newView builds the view of members (sorted by ID) at a version.
func newView(members []MemberInfo, version uint64) View {
	v := View{Members: members, Version: version, Hash: viewHash(members)}
	v.active = v.computeActive()
	return v
}

// Active returns the members that own orders. It is called for every request, so a view
// built by newView answers from a list computed once; the result must not be modified.
func (v View) Active() []MemberInfo {
	if v.active != nil || len(v.Members) == 0 {
		return v.active
	}
	return v.computeActive()
}

func (v View) computeActive() []MemberInfo {
	out := make([]MemberInfo, 0, len(v.Members))
	for _, m := range v.Members {
		if m.State == StateActive {
			out = append(out, m)
		}
	}
	return out
}

// Member returns the member with the given id.
func (v View) Member(id string) (MemberInfo, bool) {
	for _, m := range v.Members {
		if m.ID == id {
			return m, true
		}
	}
	return MemberInfo{}, false
}
