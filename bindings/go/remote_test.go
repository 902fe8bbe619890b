package nexxocache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serverURL is a server the test command started (scripts/servers.sh); without one
// the test is skipped, except under CI, where it fails.
func serverURL(t *testing.T, variable string) string {
	t.Helper()
	u := os.Getenv(variable)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set (scripts/servers.sh starts the servers)", variable)
		}
		t.Skipf("%s is not set", variable)
	}
	return u
}

func TestRemoteSharedBetweenCaches(t *testing.T) {
	for _, v := range []string{"NEXXO_TEST_HTTP_URL", "NEXXO_TEST_REDIS_URL"} {
		t.Run(v, func(t *testing.T) {
			url := serverURL(t, v)
			remote := &RemoteOptions{
				URLs:    []string{url},
				Name:    fmt.Sprintf("go-%d-%d", os.Getpid(), time.Now().UnixNano()),
				HMACKey: []byte("a key shared by this test's caches"),
			}
			a, _ := open(t, &Options{Remote: remote})
			const n = 100
			for i := 0; i < n; i++ {
				if err := a.Set("transform", []byte(fmt.Sprint("m", i)), artifact(i, 700)); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.RemoteSync(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			up, err := a.RemoteStats()
			if err != nil || up.Uploads != n || up.UploadErrors != 0 || up.Remotes != 1 {
				t.Fatalf("uploads: %+v %v", up, err)
			}

			ro := *remote
			ro.Mode = RemoteReadOnly
			b, _ := open(t, &Options{Remote: &ro})
			for i := 0; i < n; i++ {
				if got := mustGet(t, b, "transform", []byte(fmt.Sprint("m", i))); string(got) != string(artifact(i, 700)) {
					t.Fatalf("entry %d differs", i)
				}
			}
			r, _ := b.RemoteStats()
			if r.Hits != n || r.Backfills != n || r.Rejected != 0 || r.GetMean <= 0 {
				t.Fatalf("downloads: %+v", r)
			}
			b.Set("parse", []byte("dev-only"), []byte("x"))
			if err := b.RemoteSync(time.Second); err != nil {
				t.Fatal(err)
			}
			if r, _ := b.RemoteStats(); r.Uploads != 0 {
				t.Fatalf("read-only mode uploaded: %+v", r)
			}

			forged := *remote
			forged.HMACKey = []byte("not the team's key, still long")
			c, _ := open(t, &Options{Remote: &forged})
			if _, ok, _ := c.Get("transform", []byte("m1")); ok {
				t.Fatal("a value signed with another key was served")
			}
			if r, _ := c.RemoteStats(); r.Rejected != 1 {
				t.Fatalf("rejected: %+v", r)
			}
		})
	}
}

func TestRemoteOptionsAndDeadRemote(t *testing.T) {
	dir := t.TempDir()
	for i, bad := range []RemoteOptions{
		{URLs: []string{"ftp://cache.example"}},
		{URLs: []string{"https://127.0.0.1:9"}, CAFile: "/nonexistent/ca.pem"},
		{URLs: []string{"https://127.0.0.1:9"}, Token: "has space"},
		{URLs: []string{"https://127.0.0.1:9"}, Headers: map[string]string{"Host": "x"}},
		{URLs: []string{"https://127.0.0.1:9"}, Proxy: "socks5://127.0.0.1:1080"},
		{URLs: []string{"redis://r/not-a-db"}},
		{URLs: []string{"http://127.0.0.1:9"}, HMACKey: []byte("short")},
		{URLs: []string{"http://127.0.0.1:9"}, Mode: RemoteMode(7)},
		{URLs: []string{"http://127.0.0.1:9"}, Name: "has space"},
	} {
		bad := bad
		if _, err := Open(filepath.Join(dir, fmt.Sprint(i)), &Options{Remote: &bad}); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	c, _ := open(t, &Options{Remote: &RemoteOptions{URLs: []string{"http://127.0.0.1:9/cache"}, Retries: -1, Cooldown: time.Minute}})
	if _, ok, err := c.Get("parse", []byte("k")); ok || err != nil {
		t.Fatalf("a dead remote: ok=%v err=%v", ok, err)
	}
	if err := c.Set("parse", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoteSync(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	r, _ := c.RemoteStats()
	if r.Errors != 1 || r.OpenBreakers != 1 || r.Skipped != 1 {
		t.Fatalf("%+v", r)
	}
	plain, _ := open(t, nil)
	if r, _ := plain.RemoteStats(); r.Remotes != 0 {
		t.Fatalf("%+v", r)
	}
}

// GetContext returns at the context's deadline while a local miss waits on a remote that
// accepts connections and never answers; Close then waits for the native call.
func TestGetContextReturnsAtTheDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		for {
			conn, err := ln.Accept()
			if err != nil {
				for _, h := range held {
					h.Close()
				}
				return
			}
			held = append(held, conn)
		}
	}()
	c, _ := open(t, &Options{Remote: &RemoteOptions{URLs: []string{"http://" + ln.Addr().String() + "/c"}, Mode: RemoteReadOnly, Timeout: 2 * time.Second, Retries: -1}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, found, err := c.GetContext(ctx, "parse", []byte("absent"))
	if !errors.Is(err, context.DeadlineExceeded) || found {
		t.Fatalf("found=%v err=%v", found, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("GetContext returned after %v, past its 100 ms deadline", d)
	}
	ctxb, cancelb := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelb()
	start = time.Now()
	if _, err := c.BatchGetContext(ctxb, []Key{{Category: "parse", Key: []byte("absent-too")}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("BatchGetContext: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("BatchGetContext returned after %v", d)
	}
	if err := c.Set("parse", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	v, found, err := c.GetContext(context.Background(), "parse", []byte("k"))
	if err != nil || !found || string(v) != "v" {
		t.Fatalf("%q %v %v", v, found, err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if err := c.RemoteSyncContext(ctx2); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
