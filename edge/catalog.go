package edge

import (
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/ordermesh/ordermesh/actors/order"

	"github.com/gofiber/fiber/v2"
)

// Product is one thing that can be ordered. UnitPrice is in minor units (cents) of Currency.
type Product struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	UnitPrice int64  `json:"unit_price"`
	Currency  string `json:"currency"`
}

// Catalog is the read-only list of products. It is the only source of prices: clients
// send SKUs and quantities, never amounts. All products share one currency, because an
// order has one.
type Catalog struct {
	products []Product
	bySKU    map[string]Product
	currency string
}

// NewCatalog checks products and builds a catalog: at least one product, unique non-empty
// SKUs and names, prices in range, and one currency for all.
func NewCatalog(products []Product) (*Catalog, error) {
	if len(products) == 0 {
		return nil, fmt.Errorf("catalog: no products")
	}
	c := &Catalog{products: slices.Clone(products), bySKU: make(map[string]Product, len(products)), currency: products[0].Currency}
	for i, p := range products {
		switch {
		case p.SKU == "" || p.Name == "":
			return nil, fmt.Errorf("catalog: product %d: sku and name are required", i)
		// A unit dearer than the largest order could never be ordered.
		case p.UnitPrice < 0 || p.UnitPrice > order.MaxTotalValue:
			return nil, fmt.Errorf("catalog: product %s: unit_price %d out of range", p.SKU, p.UnitPrice)
		case p.Currency == "" || p.Currency != c.currency:
			return nil, fmt.Errorf("catalog: product %s: currency %q, want %q for every product", p.SKU, p.Currency, c.currency)
		}
		if _, dup := c.bySKU[p.SKU]; dup {
			return nil, fmt.Errorf("catalog: duplicate sku %s", p.SKU)
		}
		c.bySKU[p.SKU] = p
	}
	return c, nil
}

// LoadCatalog reads a catalog from a JSON file holding an array of products.
func LoadCatalog(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading catalog: %w", err)
	}
	var products []Product
	if err := decodeStrict(b, &products, false); err != nil {
		return nil, fmt.Errorf("loading catalog %s: %w", path, err)
	}
	c, err := NewCatalog(products)
	if err != nil {
		return nil, fmt.Errorf("loading catalog %s: %w", path, err)
	}
	return c, nil
}

// DemoCatalog is the built-in catalog used when none is configured.
func DemoCatalog() *Catalog {
	c, err := NewCatalog([]Product{
		{SKU: "tea-sencha", Name: "Sencha green tea, 100 g", UnitPrice: 1290, Currency: "EUR"},
		{SKU: "tea-earlgrey", Name: "Earl Grey black tea, 100 g", UnitPrice: 990, Currency: "EUR"},
		{SKU: "mug-stoneware", Name: "Stoneware mug", UnitPrice: 1850, Currency: "EUR"},
		{SKU: "kettle-gooseneck", Name: "Gooseneck kettle", UnitPrice: 5900, Currency: "EUR"},
		{SKU: "filter-paper", Name: "Paper filters, 100 pcs", UnitPrice: 450, Currency: "EUR"},
		{SKU: "scale-digital", Name: "Digital kitchen scale", UnitPrice: 2499, Currency: "EUR"},
	})
	if err != nil {
		panic(err) // a bug in the literal above
	}
	return c
}

// Products returns the products in catalog order.
func (c *Catalog) Products() []Product { return slices.Clone(c.products) }

// Currency is the currency of every product.
func (c *Catalog) Currency() string { return c.currency }

// Lookup returns the product with the given SKU.
func (c *Catalog) Lookup(sku string) (Product, bool) {
	p, ok := c.bySKU[sku]
	return p, ok
}

// price turns requested items into priced order lines. An unknown SKU is a 422, and so
// is anything the domain would refuse (order.ValidateLines: a sku on two lines, limits
// on quantities and value), checked here so that a bad order never wakes a grain.
func (c *Catalog) price(items []itemRequest) ([]order.Line, error) {
	lines := make([]order.Line, len(items))
	for i, it := range items {
		p, ok := c.Lookup(it.SKU)
		if !ok {
			return nil, order.Errorf(order.CodeValidation, "item %d: unknown sku %q", i, truncate(it.SKU, 64))
		}
		lines[i] = order.Line{SKU: p.SKU, Name: p.Name, Qty: it.Qty, UnitPrice: p.UnitPrice}
	}
	if _, err := order.ValidateLines(lines, c.currency); err != nil {
		return nil, err
	}
	return lines, nil
}

type catalogResponse struct {
	Products []catalogProduct `json:"products"`
}

// catalogProduct is a product as the catalog endpoint shows it: with the units available
// now, when they could be read.
type catalogProduct struct {
	Product
	Available *int64 `json:"available,omitempty"`
}

// Cache lifetimes of the catalog. Products and prices are the same for everyone until the
// node restarts with another catalog, so browsers and proxies may keep them a minute;
// with the units available they may keep it only briefly, which still spares the stock
// grains most reads of a flash sale. Everything else the API answers is no-store (see
// stamp).
const (
	catalogCache      = "public, max-age=60"
	catalogStockCache = "public, max-age=5"
)

// listCatalog handles GET /api/v1/catalog, which is public. With a stock service, each
// product carries "available", read from its sku's grain, all skus concurrently, once
// each and within the request's deadline: the catalog is a hint for browsing and the
// order is what reserves, so a sku whose stock cannot be read at once is shown without
// "available" rather than failing the catalog or making it wait for retries. Without a
// stock service no product carries it.
func (s *server) listCatalog(c *fiber.Ctx) error {
	products := s.catalog.Products()
	out := make([]catalogProduct, len(products))
	for i, p := range products {
		out[i].Product = p
	}
	if s.stock == nil {
		c.Set(fiber.HeaderCacheControl, catalogCache)
		return respond(c, fiber.StatusOK, catalogResponse{Products: out})
	}
	k, cancel := s.callsOf(c)
	defer cancel()
	errs := make([]error, len(out))
	fanOut(len(out), func(i int) {
		v, err := s.stock.Get(k.ctx, out[i].SKU, k.requestID)
		if errs[i] = err; err == nil {
			out[i].Available = &v.Available
		}
	})
	if missed, first := countErrors(errs); missed > 0 {
		k.log.Warn("catalog served without the availability of some skus", slog.Int("skus", missed), slog.Any("error", first))
	}
	c.Set(fiber.HeaderCacheControl, catalogStockCache)
	return respond(c, fiber.StatusOK, catalogResponse{Products: out})
}

// countErrors returns how many of errs are not nil, and the first of them.
func countErrors(errs []error) (n int, first error) {
	for _, err := range errs {
		if err != nil {
			if n == 0 {
				first = err
			}
			n++
		}
	}
	return n, first
}

// truncate shortens client input that is echoed in a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
