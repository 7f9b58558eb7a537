package lease

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// period is short so that expiry, takeover and rebalancing happen within a
// few seconds; the bounds below are in periods.
const period = 1500 * time.Millisecond

// startServer runs a real nats-server with JetStream on a random loopback
// port.
func startServer(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv.ClientURL()
}

// bucket connects (a connection per worker, so that one can be cut as a
// crash would) and opens the lease bucket with TTL = period.
func bucket(t *testing.T, url string) (*nats.Conn, jetstream.KeyValue) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "leases", TTL: period, History: 1, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return nc, kv
}

// recorder is the work function's log: who worked on which item when,
// and any moment two workers worked on one item at once.
type recorder struct {
	mu      sync.Mutex
	active  map[string]string // item → worker working on it now
	started map[string][]time.Time
	ended   map[string][]time.Time // worker/item → end times
	overlap []string
}

func newRecorder() *recorder {
	return &recorder{active: map[string]string{}, started: map[string][]time.Time{}, ended: map[string][]time.Time{}}
}

func (r *recorder) work(worker string) func(context.Context, string) {
	return func(ctx context.Context, item string) {
		r.mu.Lock()
		if o := r.active[item]; o != "" {
			r.overlap = append(r.overlap, fmt.Sprintf("%s started on %s while %s worked on it", worker, item, o))
		}
		r.active[item] = worker
		r.started[worker+"/"+item] = append(r.started[worker+"/"+item], time.Now())
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		if r.active[item] == worker {
			delete(r.active, item)
		}
		r.ended[worker+"/"+item] = append(r.ended[worker+"/"+item], time.Now())
		r.mu.Unlock()
	}
}

func (r *recorder) overlaps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.overlap...)
}

// worker is one running Pool.
type worker struct {
	id     string
	pool   *Pool
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func startWorker(t *testing.T, url, id string, items []string, pinned bool, rec *recorder) *worker {
	t.Helper()
	nc, kv := bucket(t, url)
	p, err := New(Options{KV: kv, Role: "detect", Worker: id, Items: items, Pinned: pinned, Period: period})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{id: id, pool: p, nc: nc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		p.Run(ctx, rec.work(id))
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *worker) stop() {
	w.cancel()
	<-w.done
}

var items = []string{"cam-a", "cam-b", "cam-c", "cam-d", "cam-e", "cam-f"}

// settle waits until every item is owned by exactly one of ws and each
// owns between lo and hi items, and returns item → owner; it fails on a
// double ownership seen on the way or after within.
func settle(t *testing.T, ws []*worker, items []string, lo, hi int, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := map[string]string{}
		ok := true
		var counts []string
		for _, w := range ws {
			o := w.pool.Owned()
			counts = append(counts, fmt.Sprintf("%s:%v", w.id, o))
			if len(o) < lo || len(o) > hi {
				ok = false
			}
			for _, it := range o {
				if prev, seen := got[it]; seen {
					t.Fatalf("%s owned by %s and %s at once", it, prev, w.id)
				}
				got[it] = w.id
			}
		}
		if ok && len(got) == len(items) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("ownership did not settle within %v (want each %d..%d of %d items): %s", within, lo, hi, len(items), strings.Join(counts, " "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inBucket reads each item's owner as the bucket records it.
func inBucket(t *testing.T, kv jetstream.KeyValue, items []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, it := range items {
		e, err := kv.Get(context.Background(), "detect.item."+it)
		if err != nil {
			continue
		}
		out[it] = string(e.Value())
	}
	return out
}

// TestExactlyOneOwner starts N workers at once on six items: each item
// ends up with exactly one owner, the shares differ by at most one, the
// bucket names the same owners, and no two workers ever worked on one item
// at once.
func TestExactlyOneOwner(t *testing.T) {
	for _, n := range []int{1, 2, 4, 7} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			url := startServer(t)
			_, kv := bucket(t, url)
			rec := newRecorder()
			var ws []*worker
			for i := range n {
				ws = append(ws, startWorker(t, url, fmt.Sprintf("w%d", i), items, false, rec))
			}
			lo, hi := len(items)/n, (len(items)+n-1)/n
			got := settle(t, ws, items, lo, hi, 10*period)
			// Hold it for a few renewals: still one owner each.
			time.Sleep(2 * period)
			again := settle(t, ws, items, lo, hi, 0)
			if fmt.Sprint(again) != fmt.Sprint(got) {
				t.Errorf("owners moved without cause: %v, then %v", got, again)
			}
			if b := inBucket(t, kv, items); fmt.Sprint(b) != fmt.Sprint(again) {
				t.Errorf("bucket owners = %v, want %v (what the pools hold)", b, again)
			}
			if o := rec.overlaps(); len(o) > 0 {
				t.Errorf("work overlapped: %v", o)
			}
		})
	}
}

// TestTakeoverWhenOwnerDies cuts one worker's NATS connection, as a
// kill -9 or a partition would: it can no longer renew, so it must stop
// its work before its leases could expire, and the survivor must own every
// item within one period and a renewal interval of the last renewal (plus
// slack for a loaded machine), never working on an item the dead one was
// still working on.
func TestTakeoverWhenOwnerDies(t *testing.T) {
	url := startServer(t)
	rec := newRecorder()
	a := startWorker(t, url, "a", items, false, rec)
	b := startWorker(t, url, "b", items, false, rec)
	settle(t, []*worker{a, b}, items, 3, 3, 10*period)
	lost := a.pool.Owned()
	cut := time.Now()
	a.nc.Close()
	settle(t, []*worker{b}, items, len(items), len(items), 4*period)
	took := time.Since(cut)
	t.Logf("items %v re-owned %v after the owner's connection was cut (period %v)", lost, took.Round(time.Millisecond), period)
	if bound := 2 * period; took > bound {
		t.Errorf("takeover took %v, want at most %v (a period, a renewal interval and slack for a loaded machine)", took, bound)
	}
	if o := rec.overlaps(); len(o) > 0 {
		t.Errorf("two workers worked on one item at once: %v", o)
	}
	// b owns the items; its work on them starts in goroutines of their
	// own, so wait (bounded) until each has started before checking the
	// order.
	deadline := time.Now().Add(2 * period)
	for {
		rec.mu.Lock()
		started := 0
		for _, it := range lost {
			if len(rec.started["b/"+it]) > 0 {
				started++
			}
		}
		rec.mu.Unlock()
		if started == len(lost) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// a's work stopped before b's started, for each item it lost.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, it := range lost {
		ends, starts := rec.ended["a/"+it], rec.started["b/"+it]
		if len(ends) == 0 || len(starts) == 0 {
			t.Errorf("item %s: a's work ended %v, b's started %v; want one each", it, ends, starts)
			continue
		}
		if gap := starts[len(starts)-1].Sub(ends[len(ends)-1]); gap < 0 {
			t.Errorf("item %s: b started %v before a stopped", it, -gap)
		}
		if stopped := ends[len(ends)-1].Sub(cut); stopped > period {
			t.Errorf("item %s: a stopped working %v after its connection was cut, want within one period (%v)", it, stopped, period)
		}
	}
}

// TestRebalanceOnJoin starts one worker on six items, then a second and a
// third: each time the holders give up what is above their share, the
// newcomer takes it, and no item is ever worked on twice at once.
func TestRebalanceOnJoin(t *testing.T) {
	url := startServer(t)
	rec := newRecorder()
	ws := []*worker{startWorker(t, url, "a", items, false, rec)}
	settle(t, ws, items, 6, 6, 10*period)
	for i, id := range []string{"b", "c"} {
		ws = append(ws, startWorker(t, url, id, items, false, rec))
		n := len(ws)
		start := time.Now()
		settle(t, ws, items, len(items)/n, len(items)/n, 10*period)
		t.Logf("%d workers balanced %v after %s joined", n, time.Since(start).Round(time.Millisecond), id)
		if got := ws[i+1].pool.Owned(); len(got) != len(items)/n {
			t.Errorf("newcomer %s owns %v, want %d items", id, got, len(items)/n)
		}
	}
	if o := rec.overlaps(); len(o) > 0 {
		t.Errorf("work overlapped: %v", o)
	}
	// A clean stop releases at once: the others take over well before
	// the leases would have expired.
	ws[0].stop()
	start := time.Now()
	settle(t, ws[1:], items, 3, 3, 10*period)
	t.Logf("re-owned %v after a clean stop", time.Since(start).Round(time.Millisecond))
}

// TestPinned gives one worker a pin on two items: it holds both, and the
// two unpinned workers split the other four evenly rather than counting
// the pinned items in their shares. The pinned worker starts first, or
// after the others have divided all six items among themselves (a late
// start or a restart): then they must hand its items back.
func TestPinned(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "pin starts first", true: "pin starts last"}[late], func(t *testing.T) {
			url := startServer(t)
			rec := newRecorder()
			var pin *worker
			if !late {
				pin = startWorker(t, url, "pin", items[:2], true, rec)
			}
			a := startWorker(t, url, "a", items, false, rec)
			b := startWorker(t, url, "b", items, false, rec)
			if late {
				settle(t, []*worker{a, b}, items, 3, 3, 10*period)
				pin = startWorker(t, url, "pin", items[:2], true, rec)
			}
			deadline := time.Now().Add(10 * period)
			for {
				p, oa, ob := pin.pool.Owned(), a.pool.Owned(), b.pool.Owned()
				if fmt.Sprint(p) == fmt.Sprint(items[:2]) && len(oa) == 2 && len(ob) == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("owners pin=%v a=%v b=%v; want pin=%v and two each for a and b", p, oa, ob, items[:2])
				}
				time.Sleep(20 * time.Millisecond)
			}
			if o := rec.overlaps(); len(o) > 0 {
				t.Errorf("work overlapped: %v", o)
			}
		})
	}
}

// TestNewRefusesBadOptions names what is wrong.
func TestNewRefusesBadOptions(t *testing.T) {
	url := startServer(t)
	_, kv := bucket(t, url)
	for _, tc := range []struct {
		name string
		opt  Options
		want string
	}{
		{"no bucket", Options{Role: "r", Worker: "w", Period: time.Second}, "no key-value bucket"},
		{"no period", Options{KV: kv, Role: "r", Worker: "w"}, "period"},
		{"bad item", Options{KV: kv, Role: "r", Worker: "w", Period: time.Second, Items: []string{"a.b"}}, `"a.b"`},
		{"empty worker", Options{KV: kv, Role: "r", Period: time.Second}, `""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%s) = %v, want an error containing %s", tc.name, err, tc.want)
			}
		})
	}
}
