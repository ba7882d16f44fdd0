package edge

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// OpenAPI is the contract of the HTTP API and the WebSocket messages, an OpenAPI 3.1
// document. It is committed as edge/openapi.json and served at /api/openapi.json; tests
// check it against the route table and every response the tests provoke against it.
//
//go:embed openapi.json
var OpenAPI []byte

// openAPI handles GET /api/openapi.json. It is the document itself, not an envelope.
func (s *server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Status(fiber.StatusOK).Send(OpenAPI)
}
