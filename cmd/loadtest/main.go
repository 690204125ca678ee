// Command loadtest measures the demo app under load, with and without the
// experiments middleware: it starts the demo binary on a free port of
// 127.0.0.1 for each mode, signs each client in, requests a course page
// (two experiment decisions a request) for a bounded time, and prints
// requests per second, latency percentiles and errors. It exits 1 when a
// request fails (a transport error or a status other than 200).
//
//	go build -o /tmp/demo ./cmd/demo
//	go run ./cmd/loadtest -demo /tmp/demo [-d 10s] [-c 16]
//
// .ci/loadtest does both.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	demo := flag.String("demo", "", "the demo binary (go build -o /tmp/demo ./cmd/demo)")
	d := flag.Duration("d", 10*time.Second, "how long each mode is measured")
	c := flag.Int("c", 16, "concurrent clients")
	path := flag.String("path", "/courses/course-v1:DemoX+Intro+2026", "the page requested")
	flag.Parse()
	if *demo == "" || *d <= 0 || *c < 1 {
		fmt.Fprintln(os.Stderr, "loadtest: -demo is required; -d and -c must be positive")
		os.Exit(2)
	}
	fmt.Printf("%d clients, %v per mode, GET %s, signed in (users alice to erin)\n\n", *c, *d, *path)
	fmt.Println("| mode | requests/s | p50 | p90 | p99 | max | errors |")
	fmt.Println("|---|---|---|---|---|---|---|")
	failed := false
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"without the middleware", []string{"-experiments=false"}},
		{"with the middleware", nil},
	} {
		res, err := measure(*demo, mode.args, *path, *c, *d)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadtest: %s: %v\n", mode.name, err)
			os.Exit(1)
		}
		fmt.Printf("| %s | %s |\n", mode.name, res)
		failed = failed || res.errors > 0
	}
	if failed {
		os.Exit(1)
	}
}

// result is one mode's figures.
type result struct {
	requests  int
	errors    int
	firstErr  error
	elapsed   time.Duration
	latencies []time.Duration // sorted
}

func (r result) String() string {
	q := func(p float64) string {
		if len(r.latencies) == 0 {
			return "-"
		}
		return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))].Round(time.Microsecond).String()
	}
	s := fmt.Sprintf("%.0f | %s | %s | %s | %s | %d", float64(r.requests)/r.elapsed.Seconds(), q(0.50), q(0.90), q(0.99), q(1), r.errors)
	if r.firstErr != nil {
		s += " (" + r.firstErr.Error() + ")"
	}
	return s
}

// measure starts the demo with args, loads it, and stops it.
func measure(demo string, args []string, path string, clients int, d time.Duration) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, demo, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		cancel() // interrupts the demo: it shuts down gracefully
		cmd.Wait()
	}()
	base, err := listening(out)
	if err != nil {
		return result{}, err
	}
	go io.Copy(io.Discard, out) // the demo's log
	return load(base, path, clients, d)
}

// listening reads the demo's output until it says where it listens.
func listening(out io.Reader) (string, error) {
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, addr, ok := strings.Cut(sc.Text(), "listening on "); ok {
			return strings.TrimSpace(addr), nil
		}
	}
	return "", errors.New("the demo exited without listening")
}

// load signs clients in and has them request base+path until d passes.
func load(base, path string, clients int, d time.Duration) (result, error) {
	users := []string{"alice", "bob", "carol", "dave", "erin"}
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	// Warm up: sign in, then one request each.
	jars := make([]http.CookieJar, clients)
	for i := range clients {
		jars[i], _ = cookiejar.New(nil)
		c := &http.Client{Transport: transport, Jar: jars[i]}
		resp, err := c.PostForm(base+"/login", url.Values{"username": {users[i%len(users)]}})
		if err != nil {
			return res, fmt.Errorf("signing in: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return res, fmt.Errorf("signing in: status %d", resp.StatusCode)
		}
	}
	start := time.Now()
	stop := start.Add(d)
	for i := range clients {
		c := &http.Client{Transport: transport, Jar: jars[i], Timeout: 10 * time.Second}
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			var first error
			for time.Now().Before(stop) {
				t0 := time.Now()
				err := get(c, base+path)
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			res.requests += len(lat)
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res, nil
}

// get requests u and reads the whole answer; anything but 200 fails.
func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
