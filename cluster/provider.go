package cluster

import (
	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// soloProvider is the membership of a one-node cluster: the node itself, pushed once.
// The memberlist provider replaces it when nodes are to find each other.
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
