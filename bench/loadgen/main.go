// loadgen: an open-loop GET/SET load at a fixed rate against one Redis master, found
// through Sentinel (go-redis's failover client) or given directly; one JSON object on
// stdout. Request i is due at start + i/rate and its latency is its completion minus
// that due time, so a stall shows in the figures however few requests were in flight
// (no coordinated omission). See docs/performance.md.
//
// Passwords never come from argv or the environment: with --auth-stdin the program
// reads one JSON object {"password": ..., "sentinel_password": ...} from stdin.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

type config struct {
	addr, sentinels, masterName string
	user, sentinelUser          string
	authStdin                   bool
	maps                        addrMap
	rate                        float64
	duration, warmup            time.Duration
	workers                     int
	keys                        int
	valueSize                   int
	getRatio                    float64
	preload                     bool
	lateAfter                   time.Duration
	timeout                     time.Duration
}

// addrMap rewrites the addresses the client dials (--map FROM=TO, repeatable): Sentinel
// announces the master as the deployment's network sees it, not as this host does.
type addrMap map[string]string

func (m addrMap) String() string { return fmt.Sprint(map[string]string(m)) }

func (m addrMap) Set(v string) error {
	from, to, ok := strings.Cut(v, "=")
	if !ok || from == "" || to == "" {
		return fmt.Errorf("--map wants FROM=TO (host:port=host:port), got %q", v)
	}
	m[from] = to
	return nil
}

type secrets struct {
	Password         string `json:"password"`
	SentinelPassword string `json:"sentinel_password"`
}

func parseFlags(args []string) (config, error) {
	c := config{maps: addrMap{}}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "", "host:port of the target (instead of --sentinels)")
	fs.StringVar(&c.sentinels, "sentinels", "", "comma-separated Sentinel host:port list")
	fs.StringVar(&c.masterName, "master-name", "", "the master's name in Sentinel")
	fs.StringVar(&c.user, "user", "", "ACL user on the master (empty: default user)")
	fs.StringVar(&c.sentinelUser, "sentinel-user", "sentinel-client", "ACL user on the Sentinels")
	fs.BoolVar(&c.authStdin, "auth-stdin", false, `read {"password","sentinel_password"} JSON from stdin`)
	fs.Var(c.maps, "map", "dial TO when asked for FROM (FROM=TO, repeatable)")
	fs.Float64Var(&c.rate, "rate", 10000, "requests per second (0: preload only)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measured time")
	fs.DurationVar(&c.warmup, "warmup", 5*time.Second, "time at the rate before measuring")
	fs.IntVar(&c.workers, "workers", 32, "connections, each with one request at a time")
	fs.IntVar(&c.keys, "keys", 100000, "keyspace size (keys lg:0 .. lg:N-1)")
	fs.IntVar(&c.valueSize, "value-size", 100, "bytes per value")
	fs.Float64Var(&c.getRatio, "get-ratio", 0.5, "share of GETs (the rest SETs), 0..1")
	fs.BoolVar(&c.preload, "preload", false, "write every key of the keyspace first")
	fs.DurationVar(&c.lateAfter, "late-after", time.Millisecond,
		"a request issued more than this after its due time counts as late")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "read/write timeout per request")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case (c.addr == "") == (c.sentinels == ""):
		return c, errors.New("give exactly one of --addr and --sentinels")
	case c.sentinels != "" && c.masterName == "":
		return c, errors.New("--sentinels needs --master-name")
	case c.rate < 0:
		return c, fmt.Errorf("--rate must be >= 0, got %v", c.rate)
	case c.workers < 1 || c.keys < 1 || c.valueSize < 1:
		return c, errors.New("--workers, --keys and --value-size must be >= 1")
	case c.getRatio < 0 || c.getRatio > 1:
		return c, fmt.Errorf("--get-ratio must be within 0..1, got %v", c.getRatio)
	case c.rate > 0 && c.duration <= 0:
		return c, errors.New("--duration must be > 0")
	}
	return c, nil
}

func readSecrets(r io.Reader) (secrets, error) {
	var s secrets
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return s, fmt.Errorf("--auth-stdin: stdin is not a JSON object with password/sentinel_password: %w", err)
	}
	return s, nil
}

func (c config) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, ok := c.maps[addr]; ok {
			addr = to
		}
		return d.DialContext(ctx, network, addr)
	}
}

// client: a go-redis client with `workers` connections dialed up front.
func (c config) client(s secrets) redis.UniversalClient {
	if c.addr != "" {
		return redis.NewClient(&redis.Options{
			Addr: c.addr, Username: c.user, Password: s.Password, Dialer: c.dialer(),
			PoolSize: c.workers, MinIdleConns: c.workers, ReadTimeout: c.timeout, WriteTimeout: c.timeout,
			MaxRetries: -1, DisableIdentity: true,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: c.masterName, SentinelAddrs: strings.Split(c.sentinels, ","),
		SentinelUsername: c.sentinelUser, SentinelPassword: s.SentinelPassword,
		Username: c.user, Password: s.Password, Dialer: c.dialer(),
		PoolSize: c.workers, MinIdleConns: c.workers, ReadTimeout: c.timeout, WriteTimeout: c.timeout,
		MaxRetries: -1, DisableIdentity: true,
	})
}

// masterAddr: where Sentinel says the master is (for the report), or the direct address.
func (c config) masterAddr(ctx context.Context, s secrets) (string, error) {
	if c.addr != "" {
		return c.addr, nil
	}
	var last error
	for _, a := range strings.Split(c.sentinels, ",") {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr: a, Username: c.sentinelUser, Password: s.SentinelPassword, Dialer: c.dialer(),
			DisableIdentity: true,
		})
		got, err := sc.GetMasterAddrByName(ctx, c.masterName).Result()
		_ = sc.Close()
		if err == nil && len(got) == 2 {
			return net.JoinHostPort(got[0], got[1]), nil
		}
		last = fmt.Errorf("sentinel %s: %v", a, err)
	}
	return "", last
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	var s secrets
	if c.authStdin {
		if s, err = readSecrets(stdin); err != nil {
			return err
		}
	}
	ctx := context.Background()
	master, err := c.masterAddr(ctx, s)
	if err != nil {
		return fmt.Errorf("master discovery: %w", err)
	}
	cl := c.client(s)
	defer cl.Close()
	if err := cl.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping %s: %w", master, err)
	}
	out := map[string]any{"target": master, "via_sentinel": c.sentinels != ""}
	value := makeValue(c.valueSize)
	if c.preload {
		t0 := time.Now()
		if err := preload(ctx, cl, c.keys, value); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		out["preload"] = map[string]any{"keys": c.keys, "seconds": time.Since(t0).Seconds()}
	}
	if c.rate > 0 {
		res := openLoop(ctx, cl, c, value)
		for k, v := range res.report(c) {
			out[k] = v
		}
	}
	enc := json.NewEncoder(stdout)
	return enc.Encode(out)
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(2)
	}
}
