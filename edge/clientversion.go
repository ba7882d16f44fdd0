package edge

import (
	"regexp"
	"sync"
)

// HeaderClientVersion is the version of the client app making the request; it is logged
// with each request and counted in ordermesh_http_client_version_requests_total.
const HeaderClientVersion = "X-Client-Version"

// maxClientVersions bounds the distinct versions the metric labels; later ones are
// counted as "other", so that made-up versions cannot grow the series without bound.
const maxClientVersions = 32

// clientVersionPattern is what a version looks like: 1.2.3, v1.2, 2.0.0-beta.1.
var clientVersionPattern = regexp.MustCompile(`^v?[0-9]{1,4}(\.[0-9]{1,4}){0,2}(-[0-9A-Za-z.]{1,16})?$`)

// clientVersions turns X-Client-Version into a label: "none" when absent, "invalid" when
// it is not a version, the version itself for the first maxClientVersions seen, "other"
// afterwards.
type clientVersions struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (v *clientVersions) label(header string) string {
	switch {
	case header == "":
		return "none"
	case !clientVersionPattern.MatchString(header):
		return "invalid"
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.seen[header]; ok {
		return header
	}
	if v.seen == nil {
		v.seen = map[string]struct{}{}
	}
	if len(v.seen) >= maxClientVersions {
		return "other"
	}
	v.seen[header] = struct{}{}
	return header
}
