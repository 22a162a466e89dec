package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

func key(i int) string { return "lg:" + strconv.Itoa(i) }

func makeValue(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		b[i] = letters[j.Int64()]
	}
	return string(b)
}

// preload writes keys lg:0 .. lg:n-1 in pipelines of 1,000 SETs, 8 at a time.
func preload(ctx context.Context, cl redis.UniversalClient, n int, value string) error {
	const batch, parallel = 1000, 8
	var next atomic.Int64
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(batch)) - batch
				if from >= n {
					return
				}
				p := cl.Pipeline()
				for i := from; i < min(from+batch, n); i++ {
					p.Set(ctx, key(i), value, 0)
				}
				if _, err := p.Exec(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// worker's figures, merged after the run.
type tally struct {
	latencies []int64 // ns, completion - due, measured successful requests
	late      int64   // issued more than lateAfter after their due time
	maxLag    time.Duration
	errors    int64
	firstErr  string
	lastDone  time.Time
}

type result struct {
	tally
	measureStart time.Time
	measured     int64
}

// openLoop: request i is due at start + i/rate. A fixed pool of workers, each with
// its own connection, takes the next index from a shared counter, sleeps until it is
// due and issues it. When every worker is still waiting for a reply the next request
// goes out late and its latency still counts from its due time. Requests due during
// the warm-up are issued, not recorded.
//
// The sleep is nanosleep, not time.Sleep: the Go runtime's timers wake up to a
// millisecond late, which would be counted as latency. A worker blocked in the syscall
// holds its thread (for the last 2-3 ms only); GOMAXPROCS is raised so a worker back from its sleep finds a P.
func openLoop(ctx context.Context, cl redis.UniversalClient, c config, value string) result {
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), c.workers+1))
	warm := int64(c.warmup.Seconds() * c.rate)
	total := warm + int64(c.duration.Seconds()*c.rate)
	start := time.Now().Add(20 * time.Millisecond)
	due := func(i int64) time.Time { return start.Add(time.Duration(float64(i) * 1e9 / c.rate)) }
	var next atomic.Int64
	tallies := make([]tally, c.workers)
	var wg sync.WaitGroup
	for w := range c.workers {
		wg.Add(1)
		go func(t *tally, rng *mrand.Rand) {
			defer wg.Done()
			t.latencies = make([]int64, 0, (total-warm)/int64(c.workers)+16)
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				at := due(i)
				sleepUntil(at)
				lag := time.Since(at)
				var err error
				k := key(rng.IntN(c.keys))
				if rng.Float64() < c.getRatio {
					err = cl.Get(ctx, k).Err()
					if err == redis.Nil {
						err = nil
					}
				} else {
					err = cl.Set(ctx, k, value, 0).Err()
				}
				done := time.Now()
				if i >= warm {
					t.record(lag, done, done.Sub(at), err, c.lateAfter)
				}
			}
		}(&tallies[w], mrand.New(mrand.NewPCG(uint64(w), uint64(time.Now().UnixNano()))))
	}
	wg.Wait()
	r := result{measureStart: due(warm), measured: total - warm}
	for _, t := range tallies {
		r.merge(t)
	}
	return r
}

func sleepUntil(at time.Time) {
	for {
		d := time.Until(at)
		if d <= 0 {
			return
		}
		if d > 3*time.Millisecond { // far off: a runtime timer, which holds no thread
			time.Sleep(d - 2*time.Millisecond)
			continue
		}
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil) // interrupted: sleep the rest
	}
}

func (t *tally) record(lag time.Duration, done time.Time, latency time.Duration, err error, lateAfter time.Duration) {
	t.maxLag = max(t.maxLag, lag)
	if lag > lateAfter {
		t.late++
	}
	if done.After(t.lastDone) {
		t.lastDone = done
	}
	if err != nil {
		if t.errors == 0 {
			t.firstErr = err.Error()
		}
		t.errors++
		return
	}
	t.latencies = append(t.latencies, int64(latency))
}

func (r *result) merge(t tally) {
	r.latencies = append(r.latencies, t.latencies...)
	r.late += t.late
	r.errors += t.errors
	r.maxLag = max(r.maxLag, t.maxLag)
	if r.firstErr == "" {
		r.firstErr = t.firstErr
	}
	if t.lastDone.After(r.lastDone) {
		r.lastDone = t.lastDone
	}
}

// percentile by nearest rank over the exact sorted sample, in microseconds.
func percentile(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return round1(float64(sorted[max(rank, 0)]) / 1e3)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func (r result) report(c config) map[string]any {
	slices.Sort(r.latencies)
	elapsed := r.lastDone.Sub(r.measureStart).Seconds()
	achieved := 0.0
	if elapsed > 0 {
		achieved = float64(r.measured) / elapsed
	}
	lateFraction := float64(r.late) / float64(max(r.measured, 1))
	out := map[string]any{
		"rate_asked":        c.rate,
		"rate_achieved":     math.Round(achieved),
		"n":                 r.measured,
		"ok":                len(r.latencies),
		"errors":            r.errors,
		"late":              r.late,
		"late_fraction":     lateFraction,
		"late_after_us":     c.lateAfter.Microseconds(),
		"max_issue_lag_us":  round1(float64(r.maxLag) / 1e3),
		"saturated":         lateFraction > 0.01 || achieved < 0.95*c.rate,
		"percentile_method": "exact (sorted sample)",
		"workers":           c.workers,
		"get_ratio":         c.getRatio,
		"keys":              c.keys,
		"value_size":        c.valueSize,
		"duration_s":        c.duration.Seconds(),
		"warmup_s":          c.warmup.Seconds(),
	}
	names := map[string]float64{"p50": 50, "p90": 90, "p99": 99, "p99_9": 99.9, "max": 100}
	for name, p := range names {
		if v := percentile(r.latencies, p); !math.IsNaN(v) {
			out[name+"_us"] = v
		}
	}
	if r.firstErr != "" {
		out["first_error"] = fmt.Sprint(r.firstErr)
	}
	return out
}
