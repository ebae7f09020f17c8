// fx-probe is the node tier's test workload, a STAND-IN image built here (no registry is reachable): one static
// program that serves HTTP and, run through `kubectl exec`, acts as the client a pod would be.
//
//	fx-probe serve [-addr :8080]          GET /healthz: ok; GET /: "fx-probe <hostname>"
//	fx-probe get <url> [seconds] [ca]     prints the body of a 200 answer, exits 1 otherwise; https is verified
//	                                      against the CA file given (the system's roots without one)
//	fx-probe lookup <name>                prints the name's addresses (the pod's resolv.conf, as a libc client)
//	fx-probe write <file> <text>          writes text to the file and reads it back
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: fx-probe serve|get|lookup|write ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "get":
		get(args)
	case "lookup":
		lookup(args)
	case "write":
		write(args)
	default:
		fail("unknown command %q", os.Args[1])
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":8080", "listen address")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintf(w, "fx-probe %s\n", host) })
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fail("%v", err)
	}
}

func get(args []string) {
	if len(args) < 1 {
		fail("usage: fx-probe get <url> [seconds] [ca]")
	}
	timeout := 10 * time.Second
	if len(args) > 1 {
		s, err := strconv.Atoi(args[1])
		if err != nil {
			fail("seconds: %v", err)
		}
		timeout = time.Duration(s) * time.Second
	}
	client := &http.Client{Timeout: timeout}
	if len(args) > 2 {
		pem, err := os.ReadFile(args[2])
		if err != nil {
			fail("ca: %v", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fail("ca: no certificate in %s", args[2])
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	}
	res, err := client.Get(args[0])
	if err != nil {
		fail("%v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		fail("%v", err)
	}
	if res.StatusCode != http.StatusOK {
		fail("%s: HTTP %d: %s", args[0], res.StatusCode, strings.TrimSpace(string(body)))
	}
	fmt.Print(string(body))
}

func lookup(args []string) {
	if len(args) != 1 {
		fail("usage: fx-probe lookup <name>")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The pure-Go resolver reads /etc/resolv.conf (nameserver, search, ndots) as the C library would.
	addrs, err := (&net.Resolver{PreferGo: true}).LookupHost(ctx, args[0])
	if err != nil {
		fail("%v", err)
	}
	fmt.Println(strings.Join(addrs, "\n"))
}

func write(args []string) {
	if len(args) != 2 {
		fail("usage: fx-probe write <file> <text>")
	}
	if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
		fail("%v", err)
	}
	back, err := os.ReadFile(args[0])
	if err != nil {
		fail("%v", err)
	}
	fmt.Print(string(back))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fx-probe: "+format+"\n", args...)
	os.Exit(1)
}
