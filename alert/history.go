package alert

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// page is a history response.
type page struct {
	Alerts     []Alert `json:"alerts"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := needCase(w, r)
	if !ok {
		return
	}
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.scope = s.scopeOf(p)
	if !s.auditOr500(w, r, p, "query", "alerts", c, map[string]string{"query": r.URL.RawQuery}) {
		return
	}
	alerts, next, err := s.find(r.Context(), f)
	if err != nil {
		s.log.Error("history query", "err", err)
		writeError(w, http.StatusInternalServerError, "query failed")
		return
	}
	out := page{Alerts: alerts}
	if next != nil {
		out.NextCursor = next.String()
	}
	writeJSON(w, http.StatusOK, out)
}

// exportPage is how many rows an export reads per query.
const exportPage = 500

func (s *Service) export(w http.ResponseWriter, r *http.Request, p principal) {
	c, ok := needCase(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter format: %q is not one of csv, json", format))
		return
	}
	if q.Has("limit") || q.Has("cursor") {
		writeError(w, http.StatusBadRequest, "an export takes no limit or cursor: it returns every matching row")
		return
	}
	f, err := ParseFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f.scope = s.scopeOf(p)
	where, args := f.where()
	var n int
	if err := s.db.r.QueryRowContext(r.Context(), `SELECT COUNT(*) FROM alerts`+where, args...).Scan(&n); err != nil {
		writeError(w, http.StatusInternalServerError, "query failed")
		return
	}
	if n > s.cfg.ExportLimit {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("export of %d rows exceeds the limit of %d; narrow the filter", n, s.cfg.ExportLimit))
		return
	}
	if !s.auditOr500(w, r, p, "export", "alerts", c, map[string]any{"query": r.URL.RawQuery, "rows": n}) {
		return
	}
	name := "facewatch-alerts-" + s.now().UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	var cw *csv.Writer
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw = csv.NewWriter(w)
		cw.Write(csvHeader)
	} else {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "[")
	}
	f.Limit = exportPage
	first := true
	for {
		alerts, next, err := s.find(r.Context(), f)
		if err != nil {
			// Headers are sent; end the body short so the client sees a
			// broken document rather than a silently short one.
			s.log.Error("export query", "err", err)
			panic(http.ErrAbortHandler)
		}
		for _, a := range alerts {
			if cw != nil {
				cw.Write(csvRow(a))
				continue
			}
			if !first {
				io.WriteString(w, ",")
			}
			first = false
			b, _ := json.Marshal(a)
			w.Write(b)
		}
		if next == nil {
			break
		}
		f.After = next
	}
	if cw != nil {
		cw.Flush()
	} else {
		io.WriteString(w, "]\n")
	}
}

var csvHeader = []string{"id", "hit_id", "time", "camera", "track", "watchlist", "watchlist_kind", "identity", "identity_name",
	"distance", "threshold", "second_distance", "model_name", "model_sha256", "crop_sha256", "enrolled_photo", "status"}

func csvRow(a Alert) []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	row := []string{strconv.FormatInt(a.ID, 10), a.HitID, a.Time.Format(time.RFC3339Nano), a.Camera, strconv.FormatUint(a.Track, 10),
		a.Watchlist, a.WatchlistKind, a.Identity, a.IdentityName, f(a.Distance), f(a.Threshold), f(a.SecondDistance),
		a.Model.Name, a.Model.SHA256, a.CropSHA256, a.EnrolledPhoto, string(a.Status)}
	for i, c := range row {
		row[i] = csvSafe(c)
	}
	return row
}

// csvSafe defuses spreadsheet formulas in free-text cells.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "'" + s
		}
	}
	return s
}
