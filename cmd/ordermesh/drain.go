package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

// runDrain is `ordermesh drain`: ask one node to drain and wait until it has left.
func runDrain(args []string) error {
	fs := flag.NewFlagSet("ordermesh drain", flag.ContinueOnError)
	node := fs.String("node", "http://127.0.0.1:8080", "base URL of the node to drain")
	via := fs.String("via", "", "base URL of the node to send the request to (default: --node itself)")
	user := fs.String("user", envOr("ORDERMESH_USER", "olga"), "operator user name [ORDERMESH_USER]")
	password := fs.String("password", envOr("ORDERMESH_PASSWORD", "ordermesh"), "password [ORDERMESH_PASSWORD]")
	wait := fs.Duration("wait", time.Minute, "how long to wait for the node to exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ordermesh drain [flags]\n\nAsks a node to drain (hand its orders to the other nodes, finish in-flight work, leave, exit 0)\nand waits until it has stopped answering.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	target := strings.TrimRight(*node, "/")
	api := target
	if *via != "" {
		api = strings.TrimRight(*via, "/")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(hc, "POST", api+"/auth/login", "", map[string]string{"username": *user, "password": *password}, &tok); err != nil {
		return fmt.Errorf("logging in: %w", err)
	}
	var self struct {
		Self string `json:"self"`
	}
	if err := call(hc, "GET", target+"/api/v1/cluster", tok.AccessToken, nil, &self); err != nil {
		return fmt.Errorf("asking %s for its id: %w", target, err)
	}
	if err := call(hc, "POST", api+"/api/v1/cluster/nodes/"+self.Self+"/drain", tok.AccessToken, nil, nil); err != nil {
		return fmt.Errorf("requesting the drain of %s: %w", self.Self, err)
	}
	fmt.Printf("draining node %s (%s)...\n", self.Self, target)
	start := time.Now()
	for time.Since(start) < *wait {
		time.Sleep(200 * time.Millisecond)
		resp, err := hc.Get(target + "/healthz")
		if err != nil {
			fmt.Printf("node %s has left after %.1fs\n", self.Self, time.Since(start).Seconds())
			return nil
		}
		resp.Body.Close()
	}
	return fmt.Errorf("node %s still answers after %s", self.Self, *wait)
}

// call sends one API request and decodes the envelope's data into out.
func call(hc *http.Client, method, url, token string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s %s: %s, and the body is not an envelope: %w", method, url, resp.Status, err)
	}
	if env.Code != 0 {
		return errors.New(env.Message)
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
