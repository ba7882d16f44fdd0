package edge

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadCatalog(t *testing.T) {
	tests := []struct {
		name, json string
		ok         bool
	}{
		{"valid", `[{"sku":"a","name":"A","unit_price":100,"currency":"USD"},{"sku":"b","name":"B","unit_price":0,"currency":"USD"}]`, true},
		{"empty", `[]`, false},
		{"duplicate sku", `[{"sku":"a","name":"A","unit_price":1,"currency":"USD"},{"sku":"a","name":"B","unit_price":1,"currency":"USD"}]`, false},
		{"two currencies", `[{"sku":"a","name":"A","unit_price":1,"currency":"USD"},{"sku":"b","name":"B","unit_price":1,"currency":"EUR"}]`, false},
		{"negative price", `[{"sku":"a","name":"A","unit_price":-1,"currency":"USD"}]`, false},
		{"price over the largest order", `[{"sku":"a","name":"A","unit_price":10000001,"currency":"USD"}]`, false},
		{"no name", `[{"sku":"a","unit_price":1,"currency":"USD"}]`, false},
		{"unknown field", `[{"sku":"a","name":"A","unit_price":1,"currency":"USD","tax":3}]`, false},
		{"malformed", `[{"sku":`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "catalog.json")
			if err := os.WriteFile(path, []byte(tt.json), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadCatalog(path)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (c.Currency() != "USD" || len(c.Products()) != 2) {
				t.Errorf("catalog %+v", c.Products())
			}
		})
	}
	if _, err := LoadCatalog(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file loaded")
	}
}

func TestDemoCatalogIsUsable(t *testing.T) {
	c := DemoCatalog()
	if n := len(c.Products()); n < 5 || n > 8 {
		t.Errorf("%d demo products", n)
	}
	if _, ok := c.Lookup("tea-sencha"); !ok {
		t.Error("tea-sencha missing")
	}
}
