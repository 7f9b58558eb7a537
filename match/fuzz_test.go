package match

import (
	"encoding/json"
	"math"
	"testing"
)

// FuzzParseEvent feeds arbitrary bytes to the gallery-event parser and the
// index: nothing panics, and whatever is accepted holds a finite
// descriptor of the right length and applies cleanly.
func FuzzParseEvent(f *testing.F) {
	rng := newRand(51)
	v := randVec(rng)
	good, _ := json.Marshal(Event{Seq: 3, Type: EventEnrolmentAdd, Enrolment: &EnrolmentEvent{ID: 1, IdentityID: 2, WatchlistID: 1, Descriptor: EncodeVector(&v), Model: testModel, Quality: 0.5}})
	f.Add(good)
	f.Add([]byte(`{"seq":1,"type":"watchlist.put","watchlist":{"id":1,"name":"a","version":1}}`))
	f.Add([]byte(`{"seq":2,"type":"identity.put","identity":{"id":2,"watchlist_id":1,"name":"b","version":2}}`))
	f.Add([]byte(`{"seq":4,"type":"identity.delete","deleted_id":2}`))
	f.Add([]byte(`{"seq":5,"type":"enrolment.add","enrolment":{"id":1,"identity_id":2,"watchlist_id":1,"descriptor":"AAAA"}}`))
	f.Add([]byte("\x00garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEvent(data)
		if err != nil {
			return
		}
		if ev.Type == EventEnrolmentAdd {
			vec, err := DecodeVector(ev.Enrolment.Descriptor)
			if err != nil {
				t.Fatalf("ParseEvent accepted a bad descriptor: %v", err)
			}
			for _, x := range vec {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("ParseEvent accepted %v", x)
				}
			}
		}
		x := NewIndex(testConfig(), IndexOptions{})
		x.Apply(ev)
		x.Apply(ev)
	})
}
