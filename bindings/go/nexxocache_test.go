package nexxocache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t testing.TB, opts *Options) (*Cache, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, dir
}

func artifact(i, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "export function f%d_%d(a) { return a.map((x) => x * %d); }\n", i, b.Len(), i)
	}
	return b.Bytes()[:n]
}

func mustGet(t *testing.T, c *Cache, cat string, key []byte) []byte {
	t.Helper()
	v, ok, err := c.Get(cat, key)
	if err != nil || !ok {
		t.Fatalf("get %s/%q: ok=%v err=%v", cat, key, ok, err)
	}
	return v
}

func TestVersion(t *testing.T) {
	if v := Version(); !strings.HasPrefix(v, "1.") {
		t.Fatalf("version %q", v)
	}
	if StatusLocked.String() != "cache directory locked by another writer" {
		t.Fatal(StatusLocked.String())
	}
}

func TestSetGetDelete(t *testing.T) {
	c, _ := open(t, nil)
	v := artifact(1, 1000)
	if err := c.Set("transform", []byte("src/a.ts"), v); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "transform", []byte("src/a.ts")); !bytes.Equal(got, v) {
		t.Fatal("value differs")
	}
	if _, ok, err := c.Get("parse", []byte("src/a.ts")); ok || err != nil {
		t.Fatalf("other category: ok=%v err=%v", ok, err)
	}
	big := artifact(2, 300<<10) // larger than the scratch buffer
	if err := c.Set("bundle", []byte("big"), big); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "bundle", []byte("big")); !bytes.Equal(got, big) {
		t.Fatal("big value differs")
	}
	if err := c.Set("meta", []byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "meta", []byte("empty")); len(got) != 0 {
		t.Fatal("empty value")
	}
	if err := c.Delete("transform", []byte("src/a.ts")); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get("transform", []byte("src/a.ts")); ok {
		t.Fatal("deleted key still there")
	}
	if err := c.Delete("transform", []byte("src/a.ts")); err != nil {
		t.Fatal("deleting an absent key:", err)
	}
}

// TestGetValuesAreTheCallers: Get carves values out of shared blocks; each value must
// stay as it was read while later reads fill the block (sizes that cross block ends,
// values too large to carve, a block's tail too short for the next value), and an
// append to one must not write over the next.
func TestGetValuesAreTheCallers(t *testing.T) {
	c, _ := open(t, nil)
	sizes := []int{0, 1, 100, 1000, 3000, maxCarved - 1, maxCarved, maxCarved + 1, blockSize, 3 * blockSize}
	want := map[string][]byte{}
	for i, n := range sizes {
		k := fmt.Sprint("k", i)
		want[k] = artifact(i, n)
		if err := c.Set("transform", []byte(k), want[k]); err != nil {
			t.Fatal(err)
		}
	}
	type read struct {
		key string
		v   []byte
	}
	var kept []read
	for r := 0; r < 40; r++ {
		for i := range sizes {
			k := fmt.Sprint("k", (i*7+r)%len(sizes))
			v := mustGet(t, c, "transform", []byte(k))
			if cap(v) != len(v) {
				t.Fatalf("%s: cap %d, len %d", k, cap(v), len(v))
			}
			kept = append(kept, read{k, v})
		}
	}
	a := kept[len(kept)-2].v
	_ = append(a, "written past the end"...)
	for i, r := range kept {
		if !bytes.Equal(r.v, want[r.key]) {
			t.Fatalf("read %d (%s, %d bytes) changed after later reads", i, r.key, len(want[r.key]))
		}
	}
}

func TestGetIntoAllocatesNothing(t *testing.T) {
	c, _ := open(t, nil)
	v := artifact(3, 3000)
	if err := c.Set("transform", []byte("k"), v); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, ok, err := c.GetInto("transform", []byte("k"), buf)
	if err != nil || !ok || !bytes.Equal(buf[:n], v) {
		t.Fatalf("GetInto = %d, %v, %v", n, ok, err)
	}
	if n, ok, err := c.GetInto("transform", []byte("absent"), buf); n != 0 || ok || err != nil {
		t.Fatalf("a miss: %d, %v, %v", n, ok, err)
	}
	// Too short, or empty: the length needed, and ErrBufferTooSmall.
	for _, b := range [][]byte{buf[:10], nil} {
		if n, ok, err := c.GetInto("transform", []byte("k"), b); n != len(v) || ok || !errors.Is(err, ErrBufferTooSmall) {
			t.Fatalf("short buffer: %d, %v, %v", n, ok, err)
		}
	}
	if _, _, err := c.GetInto("nope", []byte("k"), buf); !errors.Is(err, ErrUnknownCategory) {
		t.Fatalf("unknown category: %v", err)
	}
	k := []byte("k")
	allocs := testing.AllocsPerRun(200, func() {
		if _, ok, _ := c.GetInto("transform", k, buf); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("GetInto allocated %v times per call", allocs)
	}
	// Get allocates only the value it returns.
	allocs = testing.AllocsPerRun(200, func() { mustGet(t, c, "transform", k) })
	if allocs > 1 {
		t.Fatalf("Get allocated %v times per call", allocs)
	}
}

func TestErrors(t *testing.T) {
	c, dir := open(t, nil)
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"unknown category", c.Set("nope", []byte("k"), nil), ErrUnknownCategory},
		{"empty key", c.Set("parse", nil, []byte("v")), ErrInvalidArgument},
		{"long key", c.Set("parse", make([]byte, MaxKeyLen+1), nil), ErrTooLarge},
		{"delete unknown", c.Delete("nope", []byte("k")), ErrUnknownCategory},
		{"clear unknown", c.Clear("parse", "nope"), ErrUnknownCategory},
		{"compact unknown", c.Compact("nope"), ErrUnknownCategory},
		{"batch unknown", c.BatchSet([]Entry{{"parse", []byte("a"), nil}, {"nope", []byte("b"), nil}}), ErrUnknownCategory},
		{"batch empty key", c.BatchSet([]Entry{{"parse", []byte("a"), nil}, {"parse", nil, nil}}), ErrInvalidArgument},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if _, _, err := c.Get("nope", []byte("k")); !errors.Is(err, ErrUnknownCategory) {
		t.Errorf("get unknown: %v", err)
	} else if e := new(Error); !errors.As(err, &e) || e.Path != dir || !strings.Contains(err.Error(), "get(nope)") {
		t.Errorf("error lacks op or path: %v", err)
	}
	if _, err := c.CategoryStats("nope"); !errors.Is(err, ErrUnknownCategory) {
		t.Errorf("category stats: %v", err)
	}
	if _, err := c.BatchGet([]Key{{"nope", []byte("k")}}); !errors.Is(err, ErrUnknownCategory) {
		t.Errorf("batch get: %v", err)
	}
	if _, ok, _ := c.Get("parse", []byte("a")); ok {
		t.Error("a failed batch wrote something")
	}
	if second, err := Open(dir, nil); err != nil {
		t.Errorf("second open: %v", err)
	} else {
		second.Close()
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := Open(file, nil); !errors.Is(err, ErrIO) {
		t.Errorf("open a file: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x"), &Options{MemoryBudget: 1024}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("tiny budget: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x"), &Options{Categories: []string{"Bad Name"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad category name: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x"), &Options{CategoryMaxSize: map[string]uint64{"nope": 1}}); !errors.Is(err, ErrUnknownCategory) {
		t.Errorf("limit for unknown category: %v", err)
	}
	newer := filepath.Join(t.TempDir(), "newer")
	os.Mkdir(newer, 0o700)
	os.WriteFile(filepath.Join(newer, "NEXXO_FORMAT"), []byte("nexxo-cache format 7\n"), 0o600)
	if _, err := Open(newer, nil); !errors.Is(err, ErrIncompatible) {
		t.Errorf("newer format: %v", err)
	}
}

func TestUseAfterClose(t *testing.T) {
	c, _ := open(t, nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	if _, _, err := c.Get("parse", []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := c.Set("parse", []byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := c.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if _, err := c.EnforcePolicy(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestBatchesAndStats(t *testing.T) {
	c, _ := open(t, nil)
	var entries []Entry
	var logical uint64
	for i := 0; i < 1000; i++ {
		e := Entry{[]string{"parse", "transform", "bundle"}[i%3], []byte(fmt.Sprintf("m%d", i)), artifact(i, 500+i)}
		entries = append(entries, e)
		logical += uint64(len(e.Key) + len(e.Value))
	}
	if err := c.BatchSet(entries); err != nil {
		t.Fatal(err)
	}
	keys := []Key{{"parse", []byte("m0")}, {"parse", []byte("missing")}, {"transform", []byte("m1")}}
	got, err := c.BatchGet(keys)
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Found || !bytes.Equal(got[0].Value, entries[0].Value) || got[1].Found || !bytes.Equal(got[2].Value, entries[1].Value) {
		t.Fatalf("batch get: %+v", got)
	}
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries != 1000 || s.LogicalBytes != logical || s.StoredBytes == 0 || s.StoredBytes >= logical || s.Writes != 1000 {
		t.Fatalf("stats: %+v", s)
	}
	if s.Hits != 2 || s.Misses != 1 || s.DiskBytes == 0 || s.Disabled {
		t.Fatalf("stats: %+v", s)
	}
	ps, _ := c.CategoryStats("parse")
	if ps.Entries != 334 {
		t.Fatalf("parse entries %d", ps.Entries)
	}
	var j struct {
		Totals     map[string]any            `json:"totals"`
		Categories map[string]map[string]any `json:"categories"`
	}
	raw, err := c.StatsJSON()
	if err != nil || json.Unmarshal(raw, &j) != nil || j.Totals["entries"] != float64(1000) || j.Categories["parse"]["entries"] != float64(334) {
		t.Fatalf("stats json %s: %v", raw, err)
	}
	if err := c.Clear("parse", "bundle"); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Stats(); s.Entries != 333 {
		t.Fatalf("after clear: %d", s.Entries)
	}
	if err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact("transform"); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Stats(); s.Entries != 0 || s.StoredBytes != 0 {
		t.Fatalf("after clear all: %+v", s)
	}
}

func TestPolicy(t *testing.T) {
	c, _ := open(t, &Options{MaxSize: 1 << 20, NoCompression: true, CategoryMaxSize: map[string]uint64{"meta": 64 << 10}})
	val := func(i int) []byte {
		b := make([]byte, 4096)
		x := uint32(i*2654435761 + 1)
		for j := range b {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b[j] = byte(x)
		}
		return b
	}
	for i := 0; i < 600; i++ {
		if err := c.Set("optimize", []byte(fmt.Sprint(i)), val(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 64; i++ {
		c.Set("meta", []byte(fmt.Sprint(i)), val(i))
	}
	r, err := c.EnforcePolicy()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.Stats()
	m, _ := c.CategoryStats("meta")
	if s.StoredBytes > 1<<20 || m.StoredBytes > 64<<10 || s.Evictions == 0 || r.StoredBytesAfter != s.StoredBytes {
		t.Fatalf("policy: report %+v stats %+v meta %+v", r, s, m)
	}
	if _, ok, _ := c.Get("optimize", []byte("599")); !ok {
		t.Fatal("the newest entry was evicted")
	}
}

func TestReopenReadOnlyAndFallback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Open(dir, &Options{Categories: []string{"lint"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		c.Set("lint", []byte(fmt.Sprint(i)), artifact(i, 200))
	}
	c.Close()
	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for i := 0; i < 500; i++ {
		if got := mustGet(t, ro, "lint", []byte(fmt.Sprint(i))); !bytes.Equal(got, artifact(i, 200)) {
			t.Fatal("value differs after reopen")
		}
	}
	if err := ro.Set("lint", []byte("x"), nil); !errors.Is(err, ErrReadOnly) {
		t.Fatal(err)
	}
	if _, err := ro.EnforcePolicy(); !errors.Is(err, ErrReadOnly) {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	d, err := Open(file, &Options{FallbackDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Set("parse", []byte("k"), []byte("v"))
	if _, ok, _ := d.Get("parse", []byte("k")); ok {
		t.Fatal("a disabled cache served a value")
	}
	if s, _ := d.Stats(); !s.Disabled || s.DisabledReason != StatusIOError {
		t.Fatalf("%+v", s)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	c, _ := open(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				key := []byte(fmt.Sprintf("g%d/%d", g, i%50))
				v := artifact(g*1000+i, 300)
				if err := c.Set("transform", key, v); err != nil {
					errs <- err
					return
				}
				got, ok, err := c.Get("transform", key)
				if err != nil || !ok || !bytes.Equal(got, v) {
					errs <- fmt.Errorf("g%d: read back %v %v", g, ok, err)
					return
				}
				if i%10 == 0 {
					c.Stats()
				}
			}
		}(g)
	}
	// A Close racing with the workers is safe: they finish or get ErrClosed.
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s, _ := c.Stats(); s.Entries != 8*50 {
		t.Fatalf("entries %d", s.Entries)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			if _, _, err := c.Get("transform", []byte("g0/1")); err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Error(err)
				}
				return
			}
		}
	}()
	time.Sleep(time.Millisecond)
	c.Close()
	<-done
}

// TestHelperProcess is run as a child by TestSecondProcessShares.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("NEXXO_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	c, err := Open(dir, nil)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	c.Set("parse", []byte("child"), []byte("hello"))
	fmt.Println("ready")
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
	v, ok, err := c.Get("parse", []byte("parent"))
	if err != nil || !ok || string(v) != "world" {
		fmt.Println("parent's write not seen:", string(v), ok, err)
		os.Exit(4)
	}
	c.Close()
	os.Exit(0)
}

func TestSecondProcessShares(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "NEXXO_HELPER_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("child said %q: %v", line, err)
	}
	c, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("second process: %v", err)
	}
	defer c.Close()
	if got := mustGet(t, c, "parse", []byte("child")); string(got) != "hello" {
		t.Fatal(string(got))
	}
	if err := c.Set("parse", []byte("parent"), []byte("world")); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("x"))
	io.Copy(os.Stdout, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatal("child:", err)
	}
	// The child closed: this handle goes on.
	if err := c.Set("parse", []byte("after"), []byte("!")); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, c, "parse", []byte("child")); string(got) != "hello" {
		t.Fatal(string(got))
	}
}

// Goroutines that each open their own handle of one directory share the store.
func TestGoroutinesShareOneCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c, err := Open(dir, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := 0; i < 200; i++ {
				if err := c.Set("transform", []byte(fmt.Sprintf("g%d/%d", g, i)), []byte(fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Stats()
	if err != nil || s.Entries != 1600 {
		t.Fatalf("entries %d: %v", s.Entries, err)
	}
}

func FuzzSetGet(f *testing.F) {
	f.Add("parse", []byte("k"), []byte("v"))
	f.Add("transform", []byte{0, 1, 2}, []byte{})
	f.Add("nope", []byte("k"), []byte("v"))
	f.Add("", []byte(""), []byte("x"))
	f.Add("meta\x00x", bytes.Repeat([]byte("k"), 5000), bytes.Repeat([]byte("js;"), 3000))
	c, _ := open(f, nil)
	f.Fuzz(func(t *testing.T, cat string, key, value []byte) {
		err := c.Set(cat, key, value)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *Error: %v", err)
			}
			switch e.Status {
			case StatusUnknownCategory, StatusInvalidArgument, StatusTooLarge:
			default:
				t.Fatalf("unexpected %v", err)
			}
			return
		}
		got, ok, err := c.Get(cat, key)
		if err != nil || !ok || !bytes.Equal(got, value) {
			t.Fatalf("read back %q: ok=%v err=%v", got, ok, err)
		}
	})
}

func benchValue(n int) []byte { return artifact(7, n) }

func BenchmarkGet(b *testing.B) {
	for _, n := range []int{100, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, _ := open(b, nil)
			for i := 0; i < 1000; i++ {
				c.Set("transform", []byte(fmt.Sprint(i)), benchValue(n))
			}
			b.SetBytes(int64(n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok, err := c.Get("transform", []byte(fmt.Sprint(i%1000))); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

func BenchmarkSet(b *testing.B) {
	for _, n := range []int{100, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, _ := open(b, nil)
			v := benchValue(n)
			b.SetBytes(int64(n))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Set("transform", []byte(fmt.Sprint(i)), v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBatchSet(b *testing.B) {
	for _, n := range []int{100, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c, _ := open(b, nil)
			v := benchValue(n)
			batch := make([]Entry, 100)
			b.SetBytes(int64(n * len(batch)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					batch[j] = Entry{"transform", []byte(fmt.Sprintf("%d/%d", i, j)), v}
				}
				if err := c.BatchSet(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestUntrustedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Set("parse", []byte("k"), []byte("v"))
	c.Close()
	os.Chmod(dir, 0o777)
	if _, err := Open(dir, nil); !errors.Is(err, ErrInsecure) {
		t.Fatalf("world-writable directory: %v", err)
	}
	ro, err := Open(dir, &Options{AllowUntrustedDir: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Set("parse", []byte("k"), []byte("poison")); !errors.Is(err, ErrReadOnly) {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x"), &Options{DirMode: 0o600}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
}

// Limits names the limits that apply and where each came from; the ones an open sets
// are stored in the cache, so the next open without them reports them as "stored".
func TestLimits(t *testing.T) {
	c, dir := open(t, &Options{MaxSize: 5 << 20, MaxAge: 7 * 24 * time.Hour, IgnoreEnvironment: true})
	l, ok, err := c.Limits()
	if err != nil || !ok || l.MaxSize != 5<<20 || l.MaxAgeSecs != 7*86400 || l.Source.MaxSize != "option" || l.Source.MaxAge != "option" || l.Source.CategoryMaxSize != "default" {
		t.Fatalf("limits %+v ok=%v err=%v", l, ok, err)
	}
	c.Close()
	d, err := Open(dir, &Options{IgnoreEnvironment: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l, ok, err = d.Limits()
	if err != nil || !ok || l.MaxSize != 5<<20 || l.Source.MaxSize != "stored" || l.Source.MaxAge != "stored" {
		t.Fatalf("reopened: limits %+v ok=%v err=%v", l, ok, err)
	}
}

// Latency has every timed operation's percentiles; NoLatency records none.
func TestLatency(t *testing.T) {
	c, _ := open(t, &Options{IgnoreEnvironment: true})
	for i := 0; i < 50; i++ {
		if err := c.Set("transform", []byte(fmt.Sprintf("k%d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	ops, ok, err := c.Latency()
	if err != nil || !ok {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	set := ops["set"]
	if set.Count != 50 || set.Categories["transform"].Count != 50 || set.P50 <= 0 || set.P50 > set.P99 || set.P99 > set.Max {
		t.Fatalf("set %+v", set)
	}
	if _, present := ops["upload"]; !present {
		t.Fatalf("ops %v", ops)
	}
	off, _ := open(t, &Options{IgnoreEnvironment: true, NoLatency: true})
	if _, ok, err := off.Latency(); ok || err != nil {
		t.Fatalf("NoLatency: ok=%v err=%v", ok, err)
	}
}

// SetTagged and Invalidate: the tagged entries go, in every category; bad tags are refused.
func TestTags(t *testing.T) {
	c, _ := open(t, &Options{IgnoreEnvironment: true})
	if err := c.SetTagged("transform", []byte("a.ts"), []byte("A"), []byte("tsconfig#1"), []byte{0, 255}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetTagged("bundle", []byte("main.js"), []byte("M"), []byte("tsconfig#1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("parse", []byte("b.ts"), []byte("B")); err != nil {
		t.Fatal(err)
	}
	n, b, err := c.Invalidate([]byte("tsconfig#1"))
	if err != nil || n != 2 || b == 0 {
		t.Fatalf("invalidate: %d %d %v", n, b, err)
	}
	if _, found, _ := c.Get("transform", []byte("a.ts")); found {
		t.Fatal("a.ts survived")
	}
	if v, found, _ := c.Get("parse", []byte("b.ts")); !found || string(v) != "B" {
		t.Fatal("b.ts lost")
	}
	if err := c.SetTagged("parse", []byte("x"), []byte("X"), []byte{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	if err := c.SetTagged("parse", []byte("x"), []byte("X"), bytes.Repeat([]byte("t"), 257)); !errors.Is(err, ErrTooLarge) {
		t.Fatal(err)
	}
	if _, _, err := c.Invalidate(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
}

// BatchSetTagged is atomic and tags each entry; one bad tag fails the whole batch.
func TestBatchSetTagged(t *testing.T) {
	c, _ := open(t, &Options{IgnoreEnvironment: true})
	err := c.BatchSetTagged([]TaggedEntry{
		{Entry{"transform", []byte("a.ts"), []byte("A")}, [][]byte{[]byte("cfg#1"), []byte("babel@7")}},
		{Entry{"bundle", []byte("main.js"), []byte("M")}, [][]byte{[]byte("cfg#1")}},
		{Entry{"parse", []byte("b.ts"), nil}, nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.Invalidate([]byte("cfg#1")); err != nil || n != 2 {
		t.Fatalf("invalidate: %d %v", n, err)
	}
	if _, found, _ := c.Get("parse", []byte("b.ts")); !found {
		t.Fatal("b.ts lost")
	}
	err = c.BatchSetTagged([]TaggedEntry{
		{Entry{"parse", []byte("x"), []byte("X")}, [][]byte{[]byte("ok")}},
		{Entry{"parse", []byte("y"), []byte("Y")}, [][]byte{{}}},
	})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatal(err)
	}
	if _, found, _ := c.Get("parse", []byte("x")); found {
		t.Fatal("a failed batch wrote x")
	}
}

// BenchmarkGetInto: per-key reads of 1 KiB values into one buffer, keys made beforehand
// (the C worker's loop), to compare with C's nexxo_cache_get_into.
func BenchmarkGetInto(b *testing.B) {
	c, _ := open(b, nil)
	const n = 10000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("src/components/module%d.tsx", i))
		if err := c.Set("transform", keys[i], benchValue(1<<10)); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 2<<10)
	b.SetBytes(1 << 10)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok, err := c.GetInto("transform", keys[i%n], buf); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
