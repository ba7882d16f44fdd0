package edge

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
)

// CORS lets the web apps of the listed origins call the API from a browser. It is off
// unless Config.CORSOrigins names origins; tokens travel in the Authorization header, not
// in cookies, so credentials are never allowed.
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered 204
// without a body, allowed origin or not: it is the one answer that is not an envelope,
// since a 204 has no body by definition and browsers read only its headers. It still
// carries the request id and the security headers, and is logged and counted under the
// route "preflight". A preflight from an origin that is not listed gets no
// Access-Control-Allow-Origin, which is the browser's signal to refuse.

// corsAllowHeaders are the request headers a browser may send to the API.
var corsAllowHeaders = strings.Join([]string{
	fiber.HeaderAuthorization, fiber.HeaderContentType, HeaderIdempotencyKey, HeaderRequestID, HeaderClientVersion,
}, ",")

// corsExposeHeaders are the response headers a script may read.
var corsExposeHeaders = strings.Join([]string{
	HeaderRequestID, "X-Node-ID", fiber.HeaderRetryAfter, fiber.HeaderLocation, HeaderReplayed, HeaderPaymentSubmission, HeaderOwner,
}, ",")

// checkOrigins refuses origins that a browser never sends (a path, a wildcard, no
// scheme), so that a typo in --cors-origins fails at start-up instead of silently
// matching nothing.
func checkOrigins(origins []string) error {
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return fmt.Errorf("edge: CORS origin %q must be scheme://host[:port]", o)
		}
	}
	return nil
}

// corsMiddleware returns nil when CORS is off.
func (s *server) corsMiddleware() fiber.Handler {
	if len(s.cfg.CORSOrigins) == 0 {
		return nil
	}
	h := cors.New(cors.Config{
		AllowOrigins:  strings.ToLower(strings.Join(s.cfg.CORSOrigins, ",")),
		AllowMethods:  strings.Join([]string{fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch}, ","),
		AllowHeaders:  corsAllowHeaders,
		ExposeHeaders: corsExposeHeaders,
		MaxAge:        600,
	})
	return func(c *fiber.Ctx) error {
		if c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderOrigin) != "" && c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
			c.Locals(localRoute, "preflight")
		}
		return h(c)
	}
}
