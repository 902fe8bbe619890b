// Package nexxocache is the Go binding of nexxo-cache, a persistent build-artifact
// cache on RocksDB. It links libnexxo_cache through pkg-config (package nexxo_cache);
// see the repository's README for building against the source tree.
//
// A *Cache is safe for concurrent use by many goroutines. Close is idempotent; any use
// after Close returns ErrClosed.
package nexxocache

/*
#cgo pkg-config: nexxo_cache
#include <stdlib.h>
#include "nexxo_cache.h"

// nexxo_cache_get_into with its out-parameter returned by value: a Go variable whose
// address went to C would escape to the heap, one allocation per get.
typedef struct { nexxo_status status; size_t len; } nexxo_go_read;
static inline nexxo_go_read nexxo_go_get_into(const nexxo_cache *c, const char *category, const uint8_t *key,
                                              size_t key_len, uint8_t *buf, size_t cap) {
  nexxo_go_read r = {NEXXO_OK, 0};
  r.status = nexxo_cache_get_into(c, category, key, key_len, buf, cap, &r.len);
  return r;
}
*/
import "C"

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Status is a C status code (nexxo_status).
type Status int

const (
	StatusOK              Status = C.NEXXO_OK
	StatusNotFound        Status = C.NEXXO_NOT_FOUND
	StatusInvalidArgument Status = C.NEXXO_INVALID_ARGUMENT
	StatusUnknownCategory Status = C.NEXXO_UNKNOWN_CATEGORY
	StatusTooLarge        Status = C.NEXXO_TOO_LARGE
	StatusBufferTooSmall  Status = C.NEXXO_BUFFER_TOO_SMALL
	StatusLocked          Status = C.NEXXO_LOCKED
	StatusIOError         Status = C.NEXXO_IO_ERROR
	StatusNoSpace         Status = C.NEXXO_NO_SPACE
	StatusCorruption      Status = C.NEXXO_CORRUPTION
	StatusReadOnly        Status = C.NEXXO_READ_ONLY
	StatusIncompatible    Status = C.NEXXO_INCOMPATIBLE
	StatusPanic           Status = C.NEXXO_PANIC
	StatusInsecure        Status = C.NEXXO_INSECURE
	StatusTimedOut        Status = C.NEXXO_TIMED_OUT
	// StatusClosed is the binding's own: the Cache was closed.
	StatusClosed Status = -1
)

// String describes the status in the library's words.
func (s Status) String() string {
	if s == StatusClosed {
		return "cache is closed"
	}
	return C.GoString(C.nexxo_status_str(C.nexxo_status(s)))
}

// Error is every error this package returns. Compare with errors.Is and the Err
// sentinels, or read Status.
type Error struct {
	Status Status
	Op     string // the operation, e.g. "get(transform)"
	Path   string // the cache directory
}

func (e *Error) Error() string {
	if e.Op == "" {
		return "nexxo-cache: " + e.Status.String()
	}
	return fmt.Sprintf("nexxo-cache %s on %s: %s", e.Op, e.Path, e.Status)
}

// Is matches errors of the same status, so errors.Is(err, ErrLocked) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// Sentinels for errors.Is.
var (
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument}
	ErrUnknownCategory = &Error{Status: StatusUnknownCategory}
	ErrTooLarge        = &Error{Status: StatusTooLarge}
	ErrBufferTooSmall  = &Error{Status: StatusBufferTooSmall}
	ErrLocked          = &Error{Status: StatusLocked}
	ErrIO              = &Error{Status: StatusIOError}
	ErrNoSpace         = &Error{Status: StatusNoSpace}
	ErrCorruption      = &Error{Status: StatusCorruption}
	ErrReadOnly        = &Error{Status: StatusReadOnly}
	ErrIncompatible    = &Error{Status: StatusIncompatible}
	ErrPanic           = &Error{Status: StatusPanic}
	ErrInsecure        = &Error{Status: StatusInsecure}
	ErrTimedOut        = &Error{Status: StatusTimedOut}
	ErrClosed          = &Error{Status: StatusClosed}
)

// Limits of keys and values, in bytes.
const (
	MaxKeyLen   = C.NEXXO_MAX_KEY_LEN
	MaxValueLen = C.NEXXO_MAX_VALUE_LEN
)

// Version is the linked library's version.
func Version() string { return C.GoString(C.nexxo_version()) }

// Options for Open. The zero value gives the library's defaults.
type Options struct {
	// MaxSize bounds the cache's stored bytes: 0 keeps the limit the cache stores, or
	// the default (2 GiB) when it stores none; a negative value means unbounded. A
	// bound set here is stored in the cache (README "Limits belong to the cache").
	MaxSize int64
	// CategoryMaxSize bounds single categories' stored bytes.
	CategoryMaxSize map[string]uint64
	// MaxAge evicts entries unused for longer, in EnforcePolicy; 0 means never.
	MaxAge time.Duration
	// Categories beyond parse, transform, bundle, optimize and meta.
	Categories []string
	// NoCompression stores values as given instead of LZ4-compressing them.
	NoCompression bool
	// SyncWrites fsyncs every write (survives power loss, not only a killed process).
	SyncWrites bool
	ReadOnly   bool
	// FallbackDisabled opens a disabled cache instead of failing for I/O, lock,
	// corruption or format reasons.
	FallbackDisabled bool
	// MemoryBudget for the warm table (5/8), RocksDB's write buffers (1/4) and its block
	// cache (1/8); 0 keeps NEXXO_CACHE_MEMORY_BUDGET's, else the default (64 MiB).
	MemoryBudget uint64
	// DirMode of created directories, and the most an existing one may grant; 0 keeps
	// the default (0700).
	DirMode uint32
	// AllowUntrustedDir opens a directory owned by another user or writable by others
	// read-only instead of failing with ErrInsecure.
	AllowUntrustedDir bool
	// IgnoreEnvironment leaves the NEXXO_CACHE_* environment variables (NEXXO_CACHE_MAX_SIZE,
	// NEXXO_CACHE_MAX_AGE, NEXXO_CACHE_MEMORY_BUDGET, NEXXO_CACHE_READ_ONLY,
	// NEXXO_CACHE_DISABLE, NEXXO_CACHE_REMOTE and its companions; the repository's
	// README, "Environment") out of this open. By default they apply, behind what these
	// options set.
	IgnoreEnvironment bool
	// NoLatency records no latency histograms (Latency, StatsJSON's "latency"); by
	// default every call is timed (gets one in 16). NEXXO_CACHE_LATENCY=0 also turns
	// recording off.
	NoLatency bool
	// Remote attaches cache servers behind the local store; nil means none.
	Remote *RemoteOptions
}

// Cache is an open cache.
type Cache struct {
	mu   sync.RWMutex // held for reading by every call, for writing by Close
	c    *C.nexxo_cache
	path string
	// NUL-terminated copies of the category names used so far, so that a call allocates
	// none: an immutable map, replaced whole when a name is added.
	cats atomic.Pointer[map[string][]byte]
}

// cat is category as a NUL-terminated C string in Go memory (no Go pointers inside, so
// cgo may take it), made once per name and cache.
func (c *Cache) cat(category string) []byte {
	if m := c.cats.Load(); m != nil {
		if b, ok := (*m)[category]; ok {
			return b
		}
	}
	b := cstr(category)
	if len(category) > 64 {
		return b // not a category a cache can have: not worth keeping
	}
	for {
		old := c.cats.Load()
		next := make(map[string][]byte, 8)
		if old != nil {
			if len(*old) >= 64 {
				return b
			}
			for k, v := range *old {
				next[k] = v
			}
		}
		next[category] = b
		if c.cats.CompareAndSwap(old, &next) {
			return b
		}
	}
}

// cstat is how cgo types the header's `enum nexxo_status` results.
type cstat = uint32

func cstatus(s cstat) Status { return Status(s) }

func (c *Cache) err(s cstat, op string) error {
	if s == C.NEXXO_OK {
		return nil
	}
	return &Error{Status: cstatus(s), Op: op, Path: c.path}
}

func optErr(s cstat, op string) error {
	if s == C.NEXXO_OK {
		return nil
	}
	return &Error{Status: cstatus(s), Op: "options." + op}
}

func buildOptions(o *Options) (*C.nexxo_options, error) {
	opts := C.nexxo_options_new()
	if opts == nil {
		return nil, &Error{Status: StatusPanic, Op: "options"}
	}
	fail := func(err error) (*C.nexxo_options, error) {
		C.nexxo_options_free(opts)
		return nil, err
	}
	if o.MaxSize != 0 {
		max := uint64(0)
		if o.MaxSize > 0 {
			max = uint64(o.MaxSize)
		}
		if err := optErr(C.nexxo_options_set_max_size(opts, C.uint64_t(max)), "MaxSize"); err != nil {
			return fail(err)
		}
	}
	for _, name := range o.Categories {
		cs := C.CString(name)
		s := C.nexxo_options_add_category(opts, cs)
		C.free(unsafe.Pointer(cs))
		if err := optErr(s, "Categories"); err != nil {
			return fail(err)
		}
	}
	for name, limit := range o.CategoryMaxSize {
		cs := C.CString(name)
		s := C.nexxo_options_set_category_max_size(opts, cs, C.uint64_t(limit))
		C.free(unsafe.Pointer(cs))
		if err := optErr(s, "CategoryMaxSize"); err != nil {
			return fail(err)
		}
	}
	if o.MaxAge > 0 {
		secs := uint64((o.MaxAge + time.Second - 1) / time.Second)
		if err := optErr(C.nexxo_options_set_max_age(opts, C.uint64_t(secs)), "MaxAge"); err != nil {
			return fail(err)
		}
	}
	if o.NoCompression {
		if err := optErr(C.nexxo_options_set_compression(opts, C.NEXXO_COMPRESSION_NONE), "NoCompression"); err != nil {
			return fail(err)
		}
	}
	flags := []struct {
		on  bool
		set func() cstat
		op  string
	}{
		{o.SyncWrites, func() cstat { return C.nexxo_options_set_sync_writes(opts, true) }, "SyncWrites"},
		{o.ReadOnly, func() cstat { return C.nexxo_options_set_read_only(opts, true) }, "ReadOnly"},
		{o.FallbackDisabled, func() cstat { return C.nexxo_options_set_fallback_disabled(opts, true) }, "FallbackDisabled"},
		{o.AllowUntrustedDir, func() cstat { return C.nexxo_options_set_allow_untrusted_dir(opts, true) }, "AllowUntrustedDir"},
		{o.IgnoreEnvironment, func() cstat { return C.nexxo_options_set_ignore_environment(opts, true) }, "IgnoreEnvironment"},
		{o.NoLatency, func() cstat { return C.nexxo_options_set_latency(opts, false) }, "NoLatency"},
		{o.DirMode != 0, func() cstat { return C.nexxo_options_set_dir_mode(opts, C.uint32_t(o.DirMode)) }, "DirMode"},
	}
	for _, f := range flags {
		if f.on {
			if err := optErr(f.set(), f.op); err != nil {
				return fail(err)
			}
		}
	}
	if o.MemoryBudget != 0 {
		if err := optErr(C.nexxo_options_set_memory_budget(opts, C.uint64_t(o.MemoryBudget)), "MemoryBudget"); err != nil {
			return fail(err)
		}
	}
	if o.Remote != nil {
		if err := applyRemote(opts, o.Remote); err != nil {
			return fail(err)
		}
	}
	return opts, nil
}

// Open opens (creating when missing) the cache in directory path. opts may be nil.
func Open(path string, opts *Options) (*Cache, error) {
	if opts == nil {
		opts = &Options{}
	}
	copts, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	defer C.nexxo_options_free(copts)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var handle *C.nexxo_cache
	if s := C.nexxo_cache_open(cpath, copts, &handle); s != C.NEXXO_OK {
		return nil, &Error{Status: cstatus(s), Op: "open", Path: path}
	}
	c := &Cache{c: handle, path: path}
	// A safety net for a Cache dropped without Close; Close is what users should call.
	runtime.SetFinalizer(c, func(c *Cache) { _ = c.Close() })
	return c, nil
}

// Path is the cache directory.
func (c *Cache) Path() string { return c.path }

// Close closes the cache, persisting what was acknowledged. It is idempotent and waits
// for calls in progress on other goroutines.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		C.nexxo_cache_close(c.c)
		c.c = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// acquire takes the read lock; the caller must call c.mu.RUnlock when ok. The deferred
// RUnlock also keeps c reachable, so its finalizer cannot close the handle during a C
// call.
func (c *Cache) acquire(op string) (*C.nexxo_cache, error) {
	c.mu.RLock()
	if c.c == nil {
		c.mu.RUnlock()
		return nil, &Error{Status: StatusClosed, Op: op, Path: c.path}
	}
	return c.c, nil
}

// cstr is a NUL-terminated copy of s in Go memory (no Go pointers inside, so cgo may
// take it).
func cstr(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

func charPtr(b []byte) *C.char { return (*C.char)(unsafe.Pointer(&b[0])) }

// Get carves values out of blocks of blockSize, as Node's Buffer pool does: one allocation
// per block instead of one per value, and each value read straight into its place (no
// copy through a scratch buffer). A value is carved when it fits in what is left of the
// current block; one that does not starts a new block when it is at most maxCarved long,
// and gets an allocation of its own when longer. A value the caller keeps keeps its whole
// block alive; see Get.
const (
	blockSize = 32 << 10
	maxCarved = blockSize / 4
)

// valueBlock is the unused tail of the block a goroutine carves from: values before it
// were handed out and are never written again.
type valueBlock struct {
	free []byte
	last int // the length of the last value carved: a read starts a new block when less room is left
}

var blocks = sync.Pool{New: func() any { return new(valueBlock) }}

// Get reads a value. found is false on a miss (a value that failed its checksum is a
// miss too). The returned slice is the caller's: nothing else writes to it, and its
// capacity is its length (an append copies). Values are carved out of 32 KiB blocks shared
// with the values read before and after them (those longer than 8 KiB may get an
// allocation of their own), so holding a value holds its block in memory: a program that
// keeps a few small values out of many reads should copy them (bytes.Clone) or read with
// GetInto, which allocates nothing.
func (c *Cache) Get(category string, key []byte) (value []byte, found bool, err error) {
	h, err := c.acquire("get")
	if err != nil {
		return nil, false, err
	}
	defer c.mu.RUnlock()
	cat := c.cat(category)
	b := blocks.Get().(*valueBlock)
	defer blocks.Put(b)
	if len(b.free) < max(b.last, 1) {
		b.free = make([]byte, blockSize)
	}
	for {
		r := C.nexxo_go_get_into(h, charPtr(cat), bytesPtr(key), C.size_t(len(key)), bytesPtr(b.free), C.size_t(len(b.free)))
		s, n := cstat(r.status), int(r.len)
		switch s {
		case C.NEXXO_OK:
			v := b.free[:n:n]
			b.free, b.last = b.free[n:], n
			return v, true, nil
		case C.NEXXO_NOT_FOUND:
			return nil, false, nil
		case C.NEXXO_BUFFER_TOO_SMALL:
			if n > maxCarved {
				return c.getLarge(h, cat, category, key, n)
			}
			b.free = make([]byte, blockSize)
		default:
			return nil, false, c.err(s, "get("+category+")")
		}
	}
}

// getLarge reads a value of about n bytes into its own allocation. The value may change
// between reads (another writer): it reads again until the buffer holds it.
func (c *Cache) getLarge(h *C.nexxo_cache, cat []byte, category string, key []byte, n int) ([]byte, bool, error) {
	for {
		v := make([]byte, n)
		r := C.nexxo_go_get_into(h, charPtr(cat), bytesPtr(key), C.size_t(len(key)), bytesPtr(v), C.size_t(len(v)))
		s, got := cstat(r.status), int(r.len)
		switch s {
		case C.NEXXO_OK:
			return v[:got:got], true, nil
		case C.NEXXO_NOT_FOUND:
			return nil, false, nil
		case C.NEXXO_BUFFER_TOO_SMALL:
			n = got
		default:
			return nil, false, c.err(s, "get("+category+")")
		}
	}
}

// GetInto reads a value into buf without allocating: n is its length. When buf is too
// short, err is ErrBufferTooSmall (errors.Is) and n is the length needed (nothing is
// counted then); found is false on a miss.
func (c *Cache) GetInto(category string, key, buf []byte) (n int, found bool, err error) {
	h, err := c.acquire("get")
	if err != nil {
		return 0, false, err
	}
	defer c.mu.RUnlock()
	cat := c.cat(category)
	r := C.nexxo_go_get_into(h, charPtr(cat), bytesPtr(key), C.size_t(len(key)), bytesPtr(buf), C.size_t(len(buf)))
	s, got := cstat(r.status), r.len
	switch s {
	case C.NEXXO_OK:
		return int(got), true, nil
	case C.NEXXO_NOT_FOUND:
		return 0, false, nil
	case C.NEXXO_BUFFER_TOO_SMALL:
		return int(got), false, c.err(s, "get("+category+")")
	default:
		return 0, false, c.err(s, "get("+category+")")
	}
}

// Set stores value under key in category, replacing any value there.
func (c *Cache) Set(category string, key, value []byte) error {
	h, err := c.acquire("set")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	cat := c.cat(category)
	s := C.nexxo_cache_set(h, charPtr(cat), bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)))
	return c.err(s, "set("+category+")")
}

// Delete removes key from category; deleting an absent key is not an error.
func (c *Cache) Delete(category string, key []byte) error {
	h, err := c.acquire("delete")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	cat := c.cat(category)
	return c.err(C.nexxo_cache_delete(h, charPtr(cat), bytesPtr(key), C.size_t(len(key))), "delete("+category+")")
}

// Entry is one write of a batch.
type Entry struct {
	Category string
	Key      []byte
	Value    []byte
}

// TaggedEntry is one write of BatchSetTagged: an Entry and what its value depends on
// (see SetTagged).
type TaggedEntry struct {
	Entry
	Tags [][]byte
}

// Key names one entry to read.
type Key struct {
	Category string
	Key      []byte
}

// Lookup is one result of BatchGet.
type Lookup struct {
	Value []byte
	Found bool
}

func appendKey(buf []byte, category string, key []byte) ([]byte, error) {
	if len(category) > 255 {
		return nil, &Error{Status: StatusUnknownCategory, Op: "batch(" + category + ")"}
	}
	buf = append(buf, byte(len(category)))
	buf = append(buf, category...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(key)))
	return append(buf, key...), nil
}

// BatchSet stores entries atomically: after a crash either all are there or none. An
// invalid entry fails the batch before anything is written.
func (c *Cache) BatchSet(entries []Entry) error {
	h, err := c.acquire("batchSet")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	if len(entries) == 0 {
		return nil
	}
	size := 0
	for _, e := range entries {
		size += 9 + len(e.Category) + len(e.Key) + len(e.Value)
		if len(e.Key) > MaxKeyLen || len(e.Value) > MaxValueLen {
			return &Error{Status: StatusTooLarge, Op: "batchSet(" + e.Category + ")", Path: c.path}
		}
	}
	buf := make([]byte, 0, size)
	for _, e := range entries {
		if buf, err = appendKey(buf, e.Category, e.Key); err != nil {
			return err
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(e.Value)))
		buf = append(buf, e.Value...)
	}
	s := C.nexxo_cache_batch_set_packed(h, bytesPtr(buf), C.size_t(len(buf)), C.size_t(len(entries)))
	return c.err(s, "batchSet")
}

// BatchGet reads many keys at once. A key's own error (an unknown category, a bad
// length) fails the whole call.
func (c *Cache) BatchGet(keys []Key) ([]Lookup, error) {
	h, err := c.acquire("batchGet")
	if err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	if len(keys) == 0 {
		return []Lookup{}, nil
	}
	var packed []byte
	for _, k := range keys {
		if packed, err = appendKey(packed, k.Category, k.Key); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 8*len(keys)+64<<10)
	for {
		var n C.size_t
		s := C.nexxo_cache_batch_get_packed(h, bytesPtr(packed), C.size_t(len(packed)), C.size_t(len(keys)), bytesPtr(out), C.size_t(len(out)), &n)
		if s == C.NEXXO_BUFFER_TOO_SMALL {
			out = make([]byte, int(n))
			continue
		}
		if s != C.NEXXO_OK {
			return nil, c.err(s, "batchGet")
		}
		out = out[:n]
		break
	}
	res := make([]Lookup, len(keys))
	at := 0
	for i := range keys {
		st := binary.LittleEndian.Uint32(out[at:])
		n := int(binary.LittleEndian.Uint32(out[at+4:]))
		at += 8
		switch st {
		case C.NEXXO_OK:
			res[i] = Lookup{Value: append([]byte(nil), out[at:at+n]...), Found: true}
			if res[i].Value == nil {
				res[i].Value = []byte{}
			}
		case C.NEXXO_NOT_FOUND:
		default:
			return nil, c.err(st, "batchGet("+keys[i].Category+")")
		}
		at += n
	}
	return res, nil
}

// Stats are a cache's (or a category's) statistics.
type Stats struct {
	Hits, Misses, Writes, Deletes uint64 // since this handle was opened
	Entries                       uint64 // exact
	LogicalBytes                  uint64 // keys + values as given, exact
	StoredBytes                   uint64 // keys + values as stored, exact
	DiskBytes                     uint64
	Evictions, CorruptDropped     uint64 // lifetime
	HitRate                       float64
	ReadOnly, Disabled, Recovered bool
	DisabledReason                Status // StatusOK unless Disabled
}

func statsFrom(s *C.nexxo_stats) Stats {
	return Stats{
		Hits: uint64(s.hits), Misses: uint64(s.misses), Writes: uint64(s.writes), Deletes: uint64(s.deletes),
		Entries: uint64(s.entries), LogicalBytes: uint64(s.logical_bytes), StoredBytes: uint64(s.stored_bytes),
		DiskBytes: uint64(s.disk_bytes), Evictions: uint64(s.evictions), CorruptDropped: uint64(s.corrupt_dropped),
		HitRate: float64(s.hit_rate), ReadOnly: bool(s.read_only), Disabled: bool(s.disabled),
		Recovered: bool(s.recovered), DisabledReason: Status(s.disabled_reason),
	}
}

// Stats of the whole cache.
func (c *Cache) Stats() (Stats, error) {
	h, err := c.acquire("stats")
	if err != nil {
		return Stats{}, err
	}
	defer c.mu.RUnlock()
	var s C.nexxo_stats
	if err := c.err(C.nexxo_cache_stats(h, &s), "stats"); err != nil {
		return Stats{}, err
	}
	return statsFrom(&s), nil
}

// CategoryStats of one category.
func (c *Cache) CategoryStats(category string) (Stats, error) {
	h, err := c.acquire("categoryStats")
	if err != nil {
		return Stats{}, err
	}
	defer c.mu.RUnlock()
	cat := c.cat(category)
	var s C.nexxo_stats
	if err := c.err(C.nexxo_cache_category_stats(h, charPtr(cat), &s), "categoryStats("+category+")"); err != nil {
		return Stats{}, err
	}
	return statsFrom(&s), nil
}

// StatsJSON is the library's JSON statistics: totals and every category.
func (c *Cache) StatsJSON() ([]byte, error) {
	h, err := c.acquire("statsJSON")
	if err != nil {
		return nil, err
	}
	defer c.mu.RUnlock()
	var b C.nexxo_bytes
	if err := c.err(C.nexxo_cache_stats_json(h, &b), "statsJSON"); err != nil {
		return nil, err
	}
	defer C.nexxo_bytes_free(&b)
	return C.GoBytes(unsafe.Pointer(b.data), C.int(b.len)), nil
}

// Limits are the limits that apply to a handle (README "Defaults": option > environment >
// stored in the cache > default), each with where it came from: "option",
// "environment", "stored" or "default".
type Limits struct {
	MaxSize         uint64            `json:"max_size"`     // stored bytes of the whole cache; 0 = unbounded
	MaxAgeSecs      uint64            `json:"max_age_secs"` // 0 = never
	CategoryMaxSize map[string]uint64 `json:"category_max_size"`
	Source          struct {
		MaxSize         string `json:"max_size"`
		MaxAge          string `json:"max_age"`
		CategoryMaxSize string `json:"category_max_size"`
	} `json:"source"`
}

// Limits returns the limits that apply, from StatsJSON; ok is false for a disabled cache.
func (c *Cache) Limits() (l Limits, ok bool, err error) {
	raw, err := c.StatsJSON()
	if err != nil {
		return Limits{}, false, err
	}
	var j struct {
		Limits *Limits `json:"limits"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return Limits{}, false, fmt.Errorf("nexxocache: limits: %w", err)
	}
	if j.Limits == nil {
		return Limits{}, false, nil
	}
	return *j.Limits, true, nil
}

// SetTagged stores value under key in category with tags: what the value depends on (a
// config file's path and hash, package@version, a compiler id). Invalidate of any of them
// removes the entry; overwriting the key replaces its tags. At most 32 tags of 1 to 256
// bytes (ErrInvalidArgument, ErrTooLarge).
func (c *Cache) SetTagged(category string, key, value []byte, tags ...[]byte) error {
	h, err := c.acquire("set")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	cat := c.cat(category)
	var arr *C.nexxo_tag
	if len(tags) > 0 {
		mem := newCMem(tagBytes(tags))
		defer mem.free()
		arr = (*C.nexxo_tag)(C.calloc(C.size_t(len(tags)), C.size_t(unsafe.Sizeof(C.nexxo_tag{}))))
		defer C.free(unsafe.Pointer(arr))
		mem.tags(unsafe.Slice(arr, len(tags)), tags)
	}
	s := C.nexxo_cache_set_tagged(h, charPtr(cat), bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)), arr, C.size_t(len(tags)))
	return c.err(s, "set("+category+")")
}

// cMem is one C allocation for the bytes a call hands to C inside structs: cgo forbids
// storing Go pointers in C memory, and Go memory holding Go pointers may not be passed.
type cMem struct {
	buf []byte
	at  int
}

func newCMem(size int) *cMem {
	return &cMem{buf: unsafe.Slice((*byte)(C.malloc(C.size_t(size+1))), size+1)}
}

func (m *cMem) free() { C.free(unsafe.Pointer(&m.buf[0])) }

// bytes copies b in; nil for an empty b.
func (m *cMem) bytes(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	p := &m.buf[m.at]
	m.at += copy(m.buf[m.at:], b)
	return (*C.uint8_t)(unsafe.Pointer(p))
}

// cstring copies s in, NUL-terminated.
func (m *cMem) cstring(s string) *C.char {
	p := &m.buf[m.at]
	m.at += copy(m.buf[m.at:], s)
	m.buf[m.at] = 0
	m.at++
	return (*C.char)(unsafe.Pointer(p))
}

// tags fills list with the nexxo_tag structs of tags, their bytes copied in.
func (m *cMem) tags(list []C.nexxo_tag, tags [][]byte) {
	for i, t := range tags {
		list[i] = C.nexxo_tag{data: m.bytes(t), len: C.size_t(len(t))}
	}
}

func tagBytes(tags [][]byte) int {
	n := 0
	for _, t := range tags {
		n += len(t)
	}
	return n
}

// BatchSetTagged is BatchSet with each entry's tags: atomic, validated whole before
// anything is written.
func (c *Cache) BatchSetTagged(entries []TaggedEntry) error {
	h, err := c.acquire("batchSet")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	if len(entries) == 0 {
		return nil
	}
	// The entries, their tag lists and every byte they point to in C memory.
	n, ntags, size := len(entries), 0, 0
	for _, e := range entries {
		size += len(e.Category) + 1 + len(e.Key) + len(e.Value) + tagBytes(e.Tags)
		ntags += len(e.Tags)
	}
	mem := newCMem(size)
	defer mem.free()
	es := (*C.nexxo_entry)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.nexxo_entry{}))))
	ts := (*C.nexxo_tags)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.nexxo_tags{}))))
	tg := (*C.nexxo_tag)(C.calloc(C.size_t(ntags+1), C.size_t(unsafe.Sizeof(C.nexxo_tag{}))))
	defer C.free(unsafe.Pointer(es))
	defer C.free(unsafe.Pointer(ts))
	defer C.free(unsafe.Pointer(tg))
	el, tl, gl := unsafe.Slice(es, n), unsafe.Slice(ts, n), unsafe.Slice(tg, ntags+1)
	ti := 0
	for i, e := range entries {
		el[i] = C.nexxo_entry{category: mem.cstring(e.Category), key: mem.bytes(e.Key), key_len: C.size_t(len(e.Key)), value: mem.bytes(e.Value), value_len: C.size_t(len(e.Value))}
		tl[i] = C.nexxo_tags{tags: nil, count: C.size_t(len(e.Tags))}
		if len(e.Tags) > 0 {
			tl[i].tags = &gl[ti]
			mem.tags(gl[ti:ti+len(e.Tags)], e.Tags)
			ti += len(e.Tags)
		}
	}
	s := C.nexxo_cache_batch_set_tagged(h, es, ts, C.size_t(n))
	return c.err(s, "batchSet")
}

// Invalidate removes every entry carrying tag, in every category, in one atomic write,
// and says how many entries and stored bytes went.
func (c *Cache) Invalidate(tag []byte) (entries, bytes uint64, err error) {
	h, err := c.acquire("invalidate")
	if err != nil {
		return 0, 0, err
	}
	defer c.mu.RUnlock()
	var n, b C.uint64_t
	s := C.nexxo_cache_invalidate(h, bytesPtr(tag), C.size_t(len(tag)), &n, &b)
	return uint64(n), uint64(b), c.err(s, "invalidate")
}

// LatencySummary is one operation's latency in microseconds (percentiles within 6.25%).
type LatencySummary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
	Mean  float64 `json:"mean_us"`
	// Categories: the same per category (empty for batches and remote calls).
	Categories map[string]LatencySummary `json:"categories"`
}

// Latency returns this handle's latency since its open by operation ("get", "set",
// "batch_get", "batch_set", "remote_get", "upload"); gets are timed one in 16 per
// thread. ok is false when recording is off or the cache is disabled.
func (c *Cache) Latency() (ops map[string]LatencySummary, ok bool, err error) {
	raw, err := c.StatsJSON()
	if err != nil {
		return nil, false, err
	}
	var j struct {
		Latency *struct {
			Enabled bool                      `json:"enabled"`
			Ops     map[string]LatencySummary `json:"ops"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, false, fmt.Errorf("nexxocache: latency: %w", err)
	}
	if j.Latency == nil || !j.Latency.Enabled {
		return nil, false, nil
	}
	return j.Latency.Ops, true, nil
}

// PolicyReport says what EnforcePolicy did.
type PolicyReport struct {
	EvictedEntries, EvictedBytes        uint64
	StoredBytesBefore, StoredBytesAfter uint64
	Compacted                           bool
}

// EnforcePolicy evicts now (max age, then size limits) and compacts when worthwhile.
func (c *Cache) EnforcePolicy() (PolicyReport, error) {
	h, err := c.acquire("enforcePolicy")
	if err != nil {
		return PolicyReport{}, err
	}
	defer c.mu.RUnlock()
	var r C.nexxo_policy_report
	if err := c.err(C.nexxo_cache_enforce_policy(h, &r), "enforcePolicy"); err != nil {
		return PolicyReport{}, err
	}
	return PolicyReport{uint64(r.evicted_entries), uint64(r.evicted_bytes), uint64(r.stored_bytes_before), uint64(r.stored_bytes_after), bool(r.compacted)}, nil
}

// Compact compacts the named categories, or all of them when none are named.
func (c *Cache) Compact(categories ...string) error {
	h, err := c.acquire("compact")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	if len(categories) == 0 {
		return c.err(C.nexxo_cache_compact(h, nil), "compact")
	}
	for _, name := range categories {
		cat := cstr(name)
		if err := c.err(C.nexxo_cache_compact(h, charPtr(cat)), "compact("+name+")"); err != nil {
			return err
		}
	}
	return nil
}

// Clear removes every entry of the named categories (all categories when none are
// named) in one atomic write.
func (c *Cache) Clear(categories ...string) error {
	h, err := c.acquire("clear")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	if len(categories) == 0 {
		return c.err(C.nexxo_cache_clear(h, nil, 0), "clear")
	}
	// The array of name pointers lives in C memory, so it may hold pointers.
	names := (*[1 << 20]*C.char)(C.malloc(C.size_t(len(categories)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))[:len(categories):len(categories)]
	defer C.free(unsafe.Pointer(&names[0]))
	for i, name := range categories {
		names[i] = C.CString(name)
	}
	defer func() {
		for _, p := range names {
			C.free(unsafe.Pointer(p))
		}
	}()
	return c.err(C.nexxo_cache_clear(h, &names[0], C.size_t(len(categories))), "clear")
}

// Flush makes everything acknowledged durable on disk.
func (c *Cache) Flush() error {
	h, err := c.acquire("flush")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return c.err(C.nexxo_cache_flush(h), "flush")
}
