// Command bench-worker is the Go contestant of the benchmark suite (bench/run.py): one
// run, one JSON object on stdout.
//
//	bench-worker <write-read|batch|cold-open> <count> <value_len> <dir>
package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	nexxocache "github.com/nexxo-cache/nexxo-cache/bindings/go"
)

func value(i, n int) []byte {
	var b strings.Builder
	for b.Len() < n {
		fmt.Fprintf(&b, "export function C%d_%d(p) { return h('ul', p.items.map((x) => h('li', x))); }\n", i, b.Len())
	}
	return []byte(b.String()[:n])
}

func key(i int) []byte { return []byte(fmt.Sprintf("src/components/module%d.tsx", i)) }

// keyInto is key(i) written over buf (reused: no allocation).
func keyInto(buf []byte, i int) []byte {
	buf = append(buf[:0], "src/components/module"...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	return append(buf, ".tsx"...)
}

func order(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(uint64(i) * 2654435761 % uint64(i+1))
		o[i], o[j] = o[j], o[i]
	}
	return o
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[int(float64(len(xs)-1)*p)]
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: bench-worker <write-read|batch|cold-open> <count> <value_len> <dir>")
		os.Exit(2)
	}
	workload, dir := os.Args[1], os.Args[4]
	n, _ := strconv.Atoi(os.Args[2])
	size, _ := strconv.Atoi(os.Args[3])
	out := map[string]any{"contestant": "nexxo-go", "workload": workload, "count": n, "value_len": size}
	values := make([][]byte, 64)
	for i := range values {
		values[i] = value(i, size)
	}
	t0 := time.Now()
	c, err := nexxocache.Open(dir, nil)
	must(err)
	defer c.Close()
	if workload == "cold-open" {
		opened := time.Since(t0).Seconds()
		o := order(n)
		hits := 0
		// Each key made just before its get, as the C worker's are (see the reads below).
		k := keyInto(make([]byte, 0, 64), o[0])
		if _, ok, _ := c.Get("transform", k); ok {
			hits++
		}
		first := time.Since(t0).Seconds()
		for _, i := range o[1:] {
			k = keyInto(k, i)
			if _, ok, _ := c.Get("transform", k); ok {
				hits++
			}
		}
		all := time.Since(t0).Seconds()
		out["open_ms"], out["first_read_ms"] = opened*1e3, first*1e3
		out["read_all_ops_per_s"] = float64(n) / (all - opened)
		out["hit_rate"] = float64(hits) / float64(n)
	} else {
		keys := make([][]byte, n)
		for i := range keys {
			keys[i] = key(i)
		}
		var lat []float64
		logical := 0
		t := time.Now()
		if workload == "batch" {
			for i := 0; i < n; i += 1000 {
				var b []nexxocache.Entry
				for j := i; j < i+1000 && j < n; j++ {
					b = append(b, nexxocache.Entry{Category: "transform", Key: keys[j], Value: values[j%64]})
					logical += len(keys[j]) + size
				}
				s := time.Now()
				must(c.BatchSet(b))
				lat = append(lat, float64(time.Since(s).Nanoseconds())/1e3)
			}
		} else {
			for i := 0; i < n; i++ {
				s := time.Now()
				must(c.Set("transform", keys[i], values[i%64]))
				lat = append(lat, float64(time.Since(s).Nanoseconds())/1e3)
				logical += len(keys[i]) + size
			}
		}
		out["write_ops_per_s"] = float64(n) / time.Since(t).Seconds()
		which := "write"
		if workload == "batch" {
			which = "batch"
		}
		out[which+"_p50_us"], out[which+"_p99_us"] = pct(lat, 0.5), pct(lat, 0.99)
		rl := make([]float64, 0, n)
		hits := 0
		t = time.Now()
		// Each read's key is made just before it, as the C worker's (and a build's, which
		// hashes its input first) are: not read from a table of n keys at random, which
		// adds the key's cache misses to the call.
		k := make([]byte, 0, 64)
		for _, i := range order(n) {
			k = keyInto(k, i)
			s := time.Now()
			_, ok, err := c.Get("transform", k)
			rl = append(rl, float64(time.Since(s).Nanoseconds())/1e3)
			must(err)
			if ok {
				hits++
			}
		}
		out["read_ops_per_s"] = float64(n) / time.Since(t).Seconds()
		out["read_p50_us"], out["read_p99_us"] = pct(rl, 0.5), pct(rl, 0.99)
		// The same reads into one buffer (GetInto, what the C worker's loop does).
		buf := make([]byte, size+64)
		rl = rl[:0]
		t = time.Now()
		for _, i := range order(n) {
			k = keyInto(k, i)
			s := time.Now()
			_, _, err := c.GetInto("transform", k, buf)
			rl = append(rl, float64(time.Since(s).Nanoseconds())/1e3)
			must(err)
		}
		out["read_into_ops_per_s"] = float64(n) / time.Since(t).Seconds()
		out["read_into_p50_us"] = pct(rl, 0.5)
		out["hit_rate"] = float64(hits) / float64(n)
		must(c.Compact())
		// Measured once closed: a close writes files too (the warm table's image).
		must(c.Close())
		out["disk_bytes"], out["logical_bytes"] = diskUsage(dir), logical
	}
	must(json.NewEncoder(os.Stdout).Encode(out))
}

// diskUsage is the blocks the files under dir take (as `du`, and the other workers).
func diskUsage(dir string) float64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return float64(total)
}
