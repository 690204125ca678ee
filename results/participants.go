package results

import (
	"context"

	"github.com/abkit/experiments"
)

// Participation is the participants of one experiment per bucket.
type Participation struct {
	Experiment
	// Buckets holds the participants of bucket i at index i, up to the
	// highest bucket with a participant.
	Buckets []int64 `json:"buckets"`
}

// Total returns the participants of every bucket.
func (p Participation) Total() int64 {
	var n int64
	for _, b := range p.Buckets {
		n += b
	}
	return n
}

// Counter is a Source that counts the participants of every experiment
// in one pass, for overviews such as a dashboard's list. Memory, Live
// and sqlstore.Store implement it.
type Counter interface {
	// Participants returns every experiment with participants, sorted
	// as Experiments sorts them, with its participants per bucket.
	// Participants in a negative bucket, or one not below MaxBuckets, are
	// not counted (an experiment with only those is left out).
	Participants(ctx context.Context) ([]Participation, error)
}

var _ Counter = (*Memory)(nil)

// Participants counts the participants of every experiment per bucket.
func (m *Memory) Participants(ctx context.Context) ([]Participation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]Participation, 0, len(m.experiments))
	for _, x := range m.experiments {
		p := Participation{Experiment: x}
		for _, q := range m.participants[x] {
			if q.bucket < 0 || q.bucket >= MaxBuckets {
				continue
			}
			if q.bucket >= len(p.Buckets) {
				p.Buckets = append(p.Buckets, make([]int64, q.bucket+1-len(p.Buckets))...)
			}
			p.Buckets[q.bucket]++
		}
		if p.Buckets != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// Recording is what keeps exposures and conversions in memory, such as
// an experiments.MemStore.
type Recording interface {
	Exposures() []experiments.Exposure
	Conversions() []experiments.Conversion
}

// Live is a Source and Counter over a Recording that keeps growing: each
// call indexes the data as it is at that moment (NewMemory), so results
// are always current, at the cost of O(n log n) per call. It suits
// MemStore-backed apps and demos; PostgreSQL apps use sqlstore.
type Live struct{ r Recording }

var (
	_ Source  = Live{}
	_ Counter = Live{}
)

// NewLive returns a Live source over r.
func NewLive(r Recording) Live { return Live{r} }

func (l Live) memory() *Memory { return NewMemory(l.r.Exposures(), l.r.Conversions()) }

// Experiments returns the experiments with exposures, as Memory does.
func (l Live) Experiments(ctx context.Context) ([]Experiment, error) {
	return l.memory().Experiments(ctx)
}

// Aggregate returns q's aggregates, as Memory does.
func (l Live) Aggregate(ctx context.Context, q Query) (Aggregates, error) {
	return l.memory().Aggregate(ctx, q)
}

// Participants counts participants, as Memory does.
func (l Live) Participants(ctx context.Context) ([]Participation, error) {
	return l.memory().Participants(ctx)
}
