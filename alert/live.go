package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxReplay bounds how many missed alerts a reconnecting live client gets.
const maxReplay = 200

// liveWriteTimeout bounds one write to a live client: the server's
// WriteTimeout cannot apply to a stream that lasts hours, so each write
// gets its own deadline, and a client that stops reading is cut off.
const liveWriteTimeout = 30 * time.Second

// liveSlots counts the open live feeds, in all and per token, against
// config alert.live_max_clients and alert.live_max_per_token.
type liveSlots struct {
	maxTotal, maxPerToken int

	mu       sync.Mutex // guards total and perToken
	total    int
	perToken map[string]int
}

func newLiveSlots(maxTotal, maxPerToken int) *liveSlots {
	return &liveSlots{maxTotal: maxTotal, maxPerToken: maxPerToken, perToken: map[string]int{}}
}

// acquire takes a slot for token, or returns the status and message that
// refuse it: 429 when the token has its share open, 503 when the service
// has all it serves.
func (l *liveSlots) acquire(token string) (release func(), code int, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perToken[token] >= l.maxPerToken {
		return nil, http.StatusTooManyRequests, fmt.Sprintf("this token already has %d live feeds open (alert.live_max_per_token); close one first", l.maxPerToken)
	}
	if l.total >= l.maxTotal {
		return nil, http.StatusServiceUnavailable, fmt.Sprintf("the service already serves %d live feeds (alert.live_max_clients); try again later", l.maxTotal)
	}
	l.total++
	l.perToken[token]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.perToken[token]--; l.perToken[token] <= 0 {
				delete(l.perToken, token)
			}
		})
	}, 0, ""
}

// live serves the live feed: Server-Sent Events of new alerts, after a
// replay of what the client missed (Last-Event-ID).
func (s *Service) live(w http.ResponseWriter, r *http.Request, p principal) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	last, err := parseLastEventID(r.Header.Get("Last-Event-ID"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Ids only grow, across sweeps too (migration 4), so "after last" is
	// right even when every alert the client saw is gone. An id above any
	// ever handed out comes from another database (restored or replaced):
	// resume from the start of the replay window rather than skip every
	// alert until the ids catch up.
	resume := last > 0
	if resume {
		var highest int64
		err := s.db.r.QueryRowContext(r.Context(), `SELECT MAX(COALESCE((SELECT MAX(id) FROM alerts), 0), (SELECT id FROM alert_id_floor WHERE one = 1))`).Scan(&highest)
		if err == nil && last > highest {
			last = 0
		}
	}
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	release, code, msg := s.liveSlots.acquire(p.ID)
	if release == nil {
		s.m.sseRefused.WithLabelValues(strconv.Itoa(code)).Inc()
		w.Header().Set("Retry-After", "30")
		writeError(w, code, msg)
		return
	}
	defer release()
	// The feed is audited when it opens and when it closes (naming the
	// alerts it showed), not per burst: a synced audit write per burst per
	// client would let a busy feed and many clients saturate the disk.
	// Every alert is shown to every open feed, so the open entry already
	// says the operator saw what was stored while it lasted.
	if !s.auditOr500(w, r, p, "live", "live", c, map[string]int64{"last_event_id": last}) {
		return
	}
	var shown struct {
		First int64 `json:"first_id,omitempty"`
		Last  int64 `json:"last_id,omitempty"`
		Count int   `json:"count"`
	}
	defer func() {
		// The request's context has ended; the close entry still goes in.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if err := s.audit(ctx, p, "live_close", "alerts", c, shown); err != nil {
			s.log.Error("audit append failed for the end of a live feed", "err", err)
		}
	}()
	// A stream outlives the server's read and write timeouts: lift the read
	// deadline (the request has been read) and bound each write instead.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	deadline := func() { rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout)) }
	deadline()
	// Subscribe before replaying, so nothing stored in between is missed;
	// the id check below drops what the replay already sent.
	scope := s.scopeOf(p)
	ch, cancel := s.feed.subscribeFunc(func(a Alert) bool { return scope.allows(a.Camera, a.Watchlist) })
	defer cancel()
	s.m.sseClients.Inc()
	defer s.m.sseClients.Dec()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": facewatch live alerts\nretry: 2000\n\n")
	// send shows alerts to the client; the close entry counts them.
	send := func(batch []Alert) bool {
		deadline()
		for _, a := range batch {
			if a.ID <= last {
				continue
			}
			last = a.ID
			b, _ := json.Marshal(a)
			if _, err := fmt.Fprintf(w, "id: %d\nevent: alert\ndata: %s\n\n", a.ID, b); err != nil {
				return false
			}
			if shown.First == 0 {
				shown.First = a.ID
			}
			shown.Last = a.ID
			shown.Count++
		}
		fl.Flush()
		return true
	}
	if resume {
		// Only what an operator could have missed recently: the replay is
		// not a way around the history's case reference.
		cond, args := scope.and()
		rows, err := s.db.r.QueryContext(r.Context(), `SELECT `+alertColumns+` FROM alerts WHERE id > ? AND stored_ns >= ?`+cond+` ORDER BY id LIMIT ?`,
			append(append([]any{last, s.now().Add(-OperatorWindow).UnixNano()}, args...), maxReplay)...)
		if err == nil {
			var replay []Alert
			for rows.Next() {
				if a, err := scanAlert(rows); err == nil {
					replay = append(replay, a)
				}
			}
			rows.Close()
			if !send(replay) {
				return
			}
		}
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	// A feed lasts no longer than its token: revoked (by another process,
	// so polled) or expired, it ends within TokenRecheck.
	recheck := time.NewTicker(s.tokenRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-recheck.C:
			if !s.tokenValid(r.Context(), p) {
				io.WriteString(w, "event: end\ndata: {\"reason\": \"token revoked or expired\"}\n\n")
				fl.Flush()
				return
			}
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case a, ok := <-ch:
			if !ok {
				return // fell behind or shutting down; the client resumes
			}
			batch := []Alert{a}
		drain:
			for len(batch) < feedBuffer {
				select {
				case a, ok := <-ch:
					if !ok {
						break drain
					}
					batch = append(batch, a)
				default:
					break drain
				}
			}
			if !send(batch) {
				return
			}
		case <-keepalive.C:
			deadline()
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// parseLastEventID reads the Last-Event-ID header of a resuming live-feed
// client: empty (0, a new client) or the decimal id of the last alert it
// saw, at most 19 digits.
func parseLastEventID(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || len(v) > 19 || strings.Trim(v, "0123456789") != "" {
		return 0, errors.New("Last-Event-ID must be an alert id")
	}
	return n, nil
}
