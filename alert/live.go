package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxReplay bounds how many missed alerts a reconnecting live client gets.
const maxReplay = 200

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
	c, err := caseRef(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.auditOr500(w, r, p, "live", "live", c, map[string]int64{"last_event_id": last}) {
		return
	}
	// Subscribe before replaying, so nothing stored in between is missed;
	// the id check below drops what the replay already sent.
	ch, cancel := s.feed.subscribe()
	defer cancel()
	s.m.sseClients.Inc()
	defer s.m.sseClients.Dec()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, ": facewatch live alerts\nretry: 2000\n\n")
	// send shows alerts to the client, after recording that it saw them:
	// one audit entry per burst, naming every alert in it.
	send := func(batch []Alert) bool {
		var ids []int64
		for _, a := range batch {
			if a.ID > last {
				ids = append(ids, a.ID)
			}
		}
		if len(ids) == 0 {
			return true
		}
		if err := s.audit(r.Context(), p, "live_view", "alerts", c, map[string][]int64{"ids": ids}); err != nil {
			s.log.Error("audit append failed; live feed closed", "err", err)
			return false
		}
		for _, a := range batch {
			if a.ID <= last {
				continue
			}
			last = a.ID
			b, _ := json.Marshal(a)
			if _, err := fmt.Fprintf(w, "id: %d\nevent: alert\ndata: %s\n\n", a.ID, b); err != nil {
				return false
			}
		}
		fl.Flush()
		return true
	}
	if last > 0 {
		// Only what an operator could have missed recently: the replay is
		// not a way around the history's case reference.
		rows, err := s.db.r.QueryContext(r.Context(), `SELECT `+alertColumns+` FROM alerts WHERE id > ? AND stored_ns >= ? ORDER BY id LIMIT ?`,
			last, s.now().Add(-OperatorWindow).UnixNano(), maxReplay)
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
	for {
		select {
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
