package cluster

import (
	"crypto/tls"
	"errors"

	"github.com/asynkron/protoactor-go/remote"
	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Security secures a node's own ports (cluster/trust builds it from the store). Without
// it anyone who reaches the remoting port can send any actor any message, and anyone who
// reaches the gossip port can join.
type Security struct {
	// ServerTLS and ClientTLS are mutual TLS for actor remoting: the server's config
	// must require and verify client certificates, the client's must verify the server.
	ServerTLS, ClientTLS *tls.Config
	// GossipKeyring encrypts and authenticates all gossip, UDP and TCP. The caller may
	// change its keys while the node runs (rotation).
	GossipKeyring *memberlist.Keyring
}

func (s *Security) check() error {
	if s.ServerTLS == nil || s.ClientTLS == nil || s.GossipKeyring == nil || len(s.GossipKeyring.GetKeys()) == 0 {
		return errors.New("security: remoting needs both TLS configs and gossip needs a keyring with a key")
	}
	return nil
}

// remoteOptions are protoactor's remoting options for s. WithDialOptions replaces
// protoactor's default dial options (grpc.WithInsecure) rather than adding to them, so
// no plaintext dial is left.
func (s *Security) remoteOptions() []remote.ConfigOption {
	return []remote.ConfigOption{
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(s.ServerTLS))),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(s.ClientTLS))),
	}
}

// memberlistLabel is the label on every gossip packet and stream: gossip of another
// cluster (or another program) on the same network is dropped before decryption, and
// with a keyring the label is authenticated as well.
func memberlistLabel(clusterName string) string { return "ordermesh/" + clusterName }
