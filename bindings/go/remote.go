package nexxocache

/*
#include <stdlib.h>
#include "nexxo_cache.h"
*/
import "C"

import (
	"context"
	"time"
	"unsafe"
)

// RemoteMode says what a cache does with its remotes.
type RemoteMode int

const (
	// RemoteReadWrite reads from the remotes and uploads every write (CI). The default.
	RemoteReadWrite RemoteMode = iota
	// RemoteReadOnly reads from the remotes and never writes to them (developer machines).
	RemoteReadOnly
	// RemoteOff keeps the remotes configured but unused.
	RemoteOff
)

// RemoteOptions attach cache servers behind the local store: a local miss asks them, a
// verified hit is written back locally, and in read-write mode every write is uploaded
// in the background. No remote failure ever fails a call; see Cache.RemoteStats.
// Zero values keep the library's defaults.
type RemoteOptions struct {
	// URLs, tried in order (at most 8): http[s]://[user:pass@]host[:port][/base] (the
	// Bazel HTTP cache layout) or redis[s]://[[user]:pass@]host[:port][/db]; https and
	// rediss speak TLS, the server's certificate verified.
	URLs []string
	Mode RemoteMode
	// Name is the namespace on the servers; caches with the same name share entries.
	Name string
	// LocalOnly categories never go to or come from a remote.
	LocalOnly []string
	// HMACKey (at least 16 bytes) signs uploads; unsigned or tampered values are misses.
	HMACKey []byte
	// Timeout of one remote request, retries included (default 3 s).
	Timeout time.Duration
	// Retries of temporary failures (default 2); negative means none.
	Retries int
	// Cooldown during which a failing remote is skipped (default 30 s).
	Cooldown time.Duration
	// TTL of values on Redis (default 7 days); negative means no expiry.
	TTL time.Duration
	// QueueBytes bounds the bytes waiting for upload (default 64 MiB).
	QueueBytes uint64
	// CloseWait is how long Close waits for queued uploads (default 10 s).
	CloseWait time.Duration
	// Token is sent to HTTP remotes as "Authorization: Bearer <token>"; never printed.
	// Empty: NEXXO_CACHE_REMOTE_TOKEN, if set.
	Token string
	// Headers are extra request headers for HTTP remotes (an Authorization header
	// replaces the token).
	Headers map[string]string
	// CAFile is a PEM file of extra CAs trusted for https and rediss remotes, beside
	// Mozilla's roots and the system's. Empty: NEXXO_CACHE_REMOTE_CA_FILE, if set.
	CAFile string
	// Proxy is the http:// proxy of HTTP remotes; "none": no proxy. Empty: the
	// environment's (https_proxy/HTTPS_PROXY, http_proxy/HTTP_PROXY, NO_PROXY).
	Proxy string
	// CheckExists asks the server before uploading and skips what it has: for keys that
	// name their content. Default off (last write wins).
	CheckExists bool
}

func millis(d time.Duration) C.uint32_t {
	ms := d / time.Millisecond
	if ms > 1<<32-1 {
		ms = 1<<32 - 1
	}
	return C.uint32_t(ms)
}

func applyRemote(opts *C.nexxo_options, r *RemoteOptions) error {
	withC := func(s string, f func(*C.char) cstat) cstat {
		cs := C.CString(s)
		defer C.free(unsafe.Pointer(cs))
		return f(cs)
	}
	for _, u := range r.URLs {
		if err := optErr(withC(u, func(cs *C.char) cstat { return C.nexxo_options_add_remote(opts, cs) }), "Remote.URLs"); err != nil {
			return err
		}
	}
	mode := map[RemoteMode]C.nexxo_remote_mode{RemoteReadWrite: C.NEXXO_REMOTE_READ_WRITE, RemoteReadOnly: C.NEXXO_REMOTE_READ_ONLY, RemoteOff: C.NEXXO_REMOTE_OFF}
	m, ok := mode[r.Mode]
	if !ok {
		return &Error{Status: StatusInvalidArgument, Op: "options.Remote.Mode"}
	}
	if err := optErr(C.nexxo_options_set_remote_mode(opts, m), "Remote.Mode"); err != nil {
		return err
	}
	if r.Name != "" {
		if err := optErr(withC(r.Name, func(cs *C.char) cstat { return C.nexxo_options_set_remote_name(opts, cs) }), "Remote.Name"); err != nil {
			return err
		}
	}
	for _, cat := range r.LocalOnly {
		if err := optErr(withC(cat, func(cs *C.char) cstat { return C.nexxo_options_set_remote_local_only(opts, cs, true) }), "Remote.LocalOnly"); err != nil {
			return err
		}
	}
	if len(r.HMACKey) > 0 {
		k := C.CBytes(r.HMACKey)
		s := C.nexxo_options_set_remote_hmac_key(opts, (*C.uint8_t)(k), C.size_t(len(r.HMACKey)))
		C.free(k)
		if err := optErr(s, "Remote.HMACKey"); err != nil {
			return err
		}
	}
	if r.Token != "" {
		// The error names the option, never the token.
		if err := optErr(withC(r.Token, func(cs *C.char) cstat { return C.nexxo_options_set_remote_token(opts, cs) }), "Remote.Token"); err != nil {
			return err
		}
	}
	for name, value := range r.Headers {
		cn := C.CString(name)
		cv := C.CString(value)
		s := C.nexxo_options_add_remote_header(opts, cn, cv)
		C.free(unsafe.Pointer(cn))
		C.free(unsafe.Pointer(cv))
		if err := optErr(s, "Remote.Headers["+name+"]"); err != nil {
			return err
		}
	}
	if r.CheckExists {
		if err := optErr(C.nexxo_options_set_remote_check_exists(opts, true), "Remote.CheckExists"); err != nil {
			return err
		}
	}
	if r.Proxy != "" {
		p := r.Proxy
		if p == "none" {
			p = ""
		}
		if err := optErr(withC(p, func(cs *C.char) cstat { return C.nexxo_options_set_remote_proxy(opts, cs) }), "Remote.Proxy"); err != nil {
			return err
		}
	}
	if r.CAFile != "" {
		if err := optErr(withC(r.CAFile, func(cs *C.char) cstat { return C.nexxo_options_set_remote_ca_file(opts, cs) }), "Remote.CAFile"); err != nil {
			return err
		}
	}
	type setting struct {
		on  bool
		set func() cstat
		op  string
	}
	for _, s := range []setting{
		{r.Timeout != 0, func() cstat { return C.nexxo_options_set_remote_timeout(opts, millis(r.Timeout)) }, "Remote.Timeout"},
		{r.Retries != 0, func() cstat { return C.nexxo_options_set_remote_retries(opts, C.uint32_t(max(r.Retries, 0))) }, "Remote.Retries"},
		{r.Cooldown != 0, func() cstat { return C.nexxo_options_set_remote_cooldown(opts, millis(r.Cooldown)) }, "Remote.Cooldown"},
		{r.TTL != 0, func() cstat { return C.nexxo_options_set_remote_ttl(opts, C.uint64_t(max(r.TTL/time.Second, 0))) }, "Remote.TTL"},
		{r.QueueBytes != 0 || r.CloseWait != 0, func() cstat {
			q, w := r.QueueBytes, r.CloseWait
			if q == 0 {
				q = 64 << 20
			}
			if w == 0 {
				w = 10 * time.Second
			}
			return C.nexxo_options_set_remote_queue(opts, C.uint64_t(q), millis(w))
		}, "Remote.Queue"},
	} {
		if s.on {
			if err := optErr(s.set(), s.op); err != nil {
				return err
			}
		}
	}
	return nil
}

// RemoteStats are the remote tier's statistics since the cache was opened, every remote
// added up. Per-remote figures (breaker state, last error) are in StatsJSON's "remote".
type RemoteStats struct {
	Remotes               uint64 // in use; 0 without remotes or with the mode off
	Hits, Misses, Errors  uint64
	Rejected              uint64 // damaged, unsigned or wrongly signed values
	Skipped               uint64 // requests a circuit breaker kept from going out
	Backfills             uint64 // remote hits written locally
	Uploads, UploadErrors uint64
	UploadDropped, Queued uint64
	BytesUp, BytesDown    uint64
	Gets                  uint64
	GetMean, GetMax       time.Duration
	OpenBreakers          uint64
}

// RemoteStats of the cache (all zero without remotes).
func (c *Cache) RemoteStats() (RemoteStats, error) {
	h, err := c.acquire("remoteStats")
	if err != nil {
		return RemoteStats{}, err
	}
	defer c.mu.RUnlock()
	var r C.nexxo_remote_stats
	if err := c.err(C.nexxo_cache_remote_stats(h, &r), "remoteStats"); err != nil {
		return RemoteStats{}, err
	}
	return RemoteStats{
		Remotes: uint64(r.remotes), Hits: uint64(r.hits), Misses: uint64(r.misses), Errors: uint64(r.errors),
		Rejected: uint64(r.rejected), Skipped: uint64(r.skipped), Backfills: uint64(r.backfills),
		Uploads: uint64(r.uploads), UploadErrors: uint64(r.upload_errors), UploadDropped: uint64(r.upload_dropped),
		Queued: uint64(r.queued), BytesUp: uint64(r.bytes_up), BytesDown: uint64(r.bytes_down), Gets: uint64(r.gets),
		GetMean: time.Duration(float64(r.get_mean_us) * float64(time.Microsecond)),
		GetMax:  time.Duration(r.get_max_us) * time.Microsecond, OpenBreakers: uint64(r.open_breakers),
	}, nil
}

// GetContext is Get that returns when ctx is done: a local miss that waits on the
// remotes (up to the remote timeout) no longer holds the caller past its deadline. The
// native call then finishes in the background and its result is dropped; Close waits
// for it.
func (c *Cache) GetContext(ctx context.Context, category string, key []byte) (value []byte, found bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	k := append([]byte(nil), key...) // the caller may reuse key once we return
	type result struct {
		v     []byte
		found bool
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		v, f, err := c.Get(category, k)
		ch <- result{v, f, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.found, r.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// BatchGetContext is BatchGet that returns when ctx is done (its remote misses wait on
// the network). As with GetContext, the native call then finishes in the background.
// There is no GetIntoContext: an abandoned call would write into the caller's buffer
// after the caller got it back.
func (c *Cache) BatchGetContext(ctx context.Context, keys []Key) ([]Lookup, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	own := make([]Key, len(keys))
	for i, k := range keys {
		own[i] = Key{Category: k.Category, Key: append([]byte(nil), k.Key...)}
	}
	type result struct {
		r   []Lookup
		err error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := c.BatchGet(own)
		ch <- result{r, err}
	}()
	select {
	case r := <-ch:
		return r.r, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// RemoteSyncContext is RemoteSync bounded by ctx: it waits until ctx's deadline (30 s
// without one) and returns ctx.Err() when ctx is done first.
func (c *Cache) RemoteSyncContext(ctx context.Context) error {
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return ctx.Err()
		}
	}
	ch := make(chan error, 1)
	go func() { ch <- c.RemoteSync(timeout) }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RemoteSync waits until queued uploads have been sent (or have failed), at most
// timeout. It returns ErrTimedOut when uploads were still pending.
func (c *Cache) RemoteSync(timeout time.Duration) error {
	h, err := c.acquire("remoteSync")
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return c.err(C.nexxo_cache_remote_sync(h, millis(timeout)), "remoteSync")
}
