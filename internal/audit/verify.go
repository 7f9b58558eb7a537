package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Report is what Verify found.
type Report struct {
	Log string `json:"log"`
	// Entries is how many entries verified (all of them when err is nil).
	Entries int `json:"entries"`
	// Era is the seq of the keyed-era entry; entries before it are
	// legacy plain-SHA-256 entries, covered by the checkpoints only.
	Era int64 `json:"era"`
	// Checkpoints is how many checkpoints were checked.
	Checkpoints int `json:"checkpoints"`
	// Checkpointed is the highest seq a checkpoint covers: entries after
	// it could be cut off unseen until the next checkpoint.
	Checkpointed int64  `json:"checkpointed"`
	HeadSeq      int64  `json:"head_seq"`
	Head         string `json:"head"`
	// Expired is how many entries' details have expired (ExpireDetails):
	// their text is gone, the digest their hash covers is kept.
	Expired int `json:"expired_details"`
}

// Verify checks log name (its audit table, read through q) against keys
// and its checkpoints (from ReadCheckpoints and any other copy, such as
// the JetStream stream's; those of other logs are skipped). It detects:
// an edited entry, a chain recomputed without the key (plain SHA-256 or
// another key), a removed or reordered entry, entries cut off the end
// (a checkpoint covers an entry the log no longer has), a rewritten
// history (an entry differing from a checkpoint's head), a forged
// checkpoint and a removed keyed-era entry. A log with entries and no
// checkpoint is refused: nothing rules out that it was rewritten. On a
// break the error wraps ErrBroken and says what and where.
func Verify(ctx context.Context, q Querier, keys *Keys, name string, cps []Checkpoint) (Report, error) {
	rep := Report{Log: name, Head: GenesisHash}
	pub := keys.Public()
	var mine []Checkpoint
	var era int64
	want := map[int64]string{}
	for _, c := range cps {
		if c.Log != name {
			continue
		}
		if err := c.CheckSignature(pub); err != nil {
			return rep, fmt.Errorf("%w: %w", ErrBroken, err)
		}
		if era != 0 && c.Era != era {
			return rep, fmt.Errorf("%w: checkpoints disagree on where the keyed era starts (%d and %d)", ErrBroken, era, c.Era)
		}
		era = c.Era
		mine = append(mine, c)
		if h, ok := want[c.Seq]; ok && h != c.Head {
			return rep, fmt.Errorf("%w: two signed checkpoints name different heads for entry %d", ErrBroken, c.Seq)
		}
		want[c.Seq] = c.Head
		rep.Checkpointed = max(rep.Checkpointed, c.Seq)
	}
	rep.Checkpoints = len(mine)
	rep.Era = era
	got := map[int64]string{}
	var dbEra, hashed int64
	prev := GenesisHash
	err := eachEntry(ctx, q, func(e *Entry) error {
		n := int64(rep.Entries) + 1
		if e.Action == ActionKeyed && dbEra == 0 {
			dbEra = e.Seq
			if era == 0 {
				era = e.Seq // no checkpoint; refused below
			}
		}
		// Entries after the one starting the hashed-detail era hash
		// their detail's digest; that entry and those before, the text.
		hd := hashed > 0 && e.Seq > hashed
		if !hd && IsExpiredDetail(e.Detail) {
			return fmt.Errorf("%w at entry %d: its detail is marked expired, but it was written before details could expire", ErrBroken, e.Seq)
		}
		switch {
		case e.Seq != n:
			return fmt.Errorf("%w at entry %d: missing (the log jumps from %d to %d: an entry was removed)", ErrBroken, n, n-1, e.Seq)
		case e.PrevHash != prev:
			return fmt.Errorf("%w at entry %d: prev_hash does not match the hash of entry %d", ErrBroken, e.Seq, e.Seq-1)
		case era > 0 && e.Seq >= era:
			if keyedHash(keys.mac, prev, e, hd) != e.Hash {
				if plainHash(prev, e, hd) == e.Hash {
					return fmt.Errorf("%w at entry %d: chained with plain SHA-256, not the audit key: the chain was recomputed by someone without the key", ErrBroken, e.Seq)
				}
				return fmt.Errorf("%w at entry %d: content does not match its keyed hash (edited, or chained with another key)", ErrBroken, e.Seq)
			}
		case plainHash(prev, e, false) != e.Hash:
			return fmt.Errorf("%w at entry %d: content does not match its hash (edited)", ErrBroken, e.Seq)
		}
		// Only verified entries start the era: the keyed-era entry whose
		// detail says so, or the first ActionDetailsHashed after it.
		if hashed == 0 && dbEra > 0 && e.Seq >= dbEra && e.Seq >= era {
			switch {
			case e.Seq == dbEra:
				var d keyedDetail
				if json.Unmarshal([]byte(e.Detail), &d) == nil && d.DetailsHashed {
					hashed = e.Seq
				}
			case e.Action == ActionDetailsHashed:
				hashed = e.Seq
			}
		}
		if hd && IsExpiredDetail(e.Detail) {
			rep.Expired++
		}
		if _, ok := want[e.Seq]; ok {
			got[e.Seq] = e.Hash
		}
		prev = e.Hash
		rep.Entries++
		rep.HeadSeq, rep.Head = e.Seq, e.Hash
		return nil
	})
	if err != nil {
		return rep, err
	}
	switch {
	case rep.Entries == 0 && len(mine) == 0:
		return rep, nil // never written
	case len(mine) == 0:
		return rep, fmt.Errorf("%w: %d entries and no checkpoint: cannot rule out a rewritten or truncated log (checkpoint file missing?)", ErrBroken, rep.Entries)
	case dbEra == 0:
		return rep, fmt.Errorf("%w: the keyed-era entry %d is gone (checkpoints say the log is keyed from there)", ErrBroken, era)
	case dbEra != era:
		return rep, fmt.Errorf("%w: the keyed era starts at entry %d, the checkpoints say %d", ErrBroken, dbEra, era)
	}
	for _, c := range mine {
		if c.Seq > rep.HeadSeq {
			return rep, fmt.Errorf("%w: truncated: the log ends at entry %d but the checkpoint of %s covers %d entries (entries %d-%d were cut off)",
				ErrBroken, rep.HeadSeq, c.Time.Format(time.RFC3339), c.Seq, rep.HeadSeq+1, c.Seq)
		}
		if got[c.Seq] != c.Head {
			return rep, fmt.Errorf("%w at entry %d: it differs from the checkpoint of %s (history rewritten)", ErrBroken, c.Seq, c.Time.Format(time.RFC3339))
		}
	}
	return rep, nil
}

func eachEntry(ctx context.Context, q Querier, fn func(*Entry) error) error {
	rows, err := q.QueryContext(ctx, `SELECT seq, time_ns, actor, actor_name, role, action, target, case_ref, detail, prev_hash, hash FROM audit ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var ns int64
		if err := rows.Scan(&e.Seq, &ns, &e.Actor, &e.ActorName, &e.Role, &e.Action, &e.Target, &e.Case, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return fmt.Errorf("reading audit entry: %w", err)
		}
		e.Time = time.Unix(0, ns).UTC()
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading audit log: %w", err)
	}
	return nil
}
