package cluster

import (
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// membership is what a node needs of its cluster membership: the memberlist-backed
// Membership, or solo for a node that runs alone.
type membership interface {
	View() View
	Self() MemberInfo
	SetState(MemberState) error
	Leave(timeout time.Duration) error
}

// solo is the membership of a node that was given no gossip address: it is the whole
// cluster.
type solo struct {
	mu   sync.Mutex
	self MemberInfo
	ver  uint64
}

func newSolo(self MemberInfo) *solo { return &solo{self: self, ver: 1} }

func (s *solo) Self() MemberInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self
}

func (s *solo) View() View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return newView([]MemberInfo{s.self}, s.ver)
}

func (s *solo) SetState(st MemberState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.self.State != st {
		s.self.State = st
		s.ver++
	}
	return nil
}

func (s *solo) Leave(time.Duration) error { return nil }

// soloProvider tells protoactor that the node is the only member.
type soloProvider struct{}

// StartMember publishes the node as the only member.
func (soloProvider) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(pcluster.Members{{
		Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds(),
	}})
	return nil
}

// StartClient is not used: every ordermesh process is a member.
func (soloProvider) StartClient(*pcluster.Cluster) error { return nil }

// Shutdown has nothing to leave.
func (soloProvider) Shutdown(bool) error { return nil }
