package admin

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/abkit/experiments/results"
)

func TestYTicksAreNiceAndTopTheFirstAtOrAboveTheMax(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hi, minStep float64
		step        float64
		n           int
	}{
		{"ok, 138 participants: 0 to 150 by 50", 138, 1, 50, 3},
		{"ok, 20 participants: 0 to 20 by 5", 20, 1, 5, 4},
		{"ok, 100 participants end on 100", 100, 1, 50, 2},
		{"ok, 3 participants: steps of 1", 3, 1, 1, 3},
		{"ok, a rate of 14.5%: 0 to 15% by 5%", 0.145, 0.001, 0.05, 3},
		{"ok, a rate of exactly 15% ends on 15% despite rounding", 0.15, 0.001, 0.05, 3},
		{"ok, a tiny rate: one step of the minimum", 0.0004, 0.001, 0.001, 1},
		{"ok, no participants at all: 0 to 1", 0, 1, 1, 1},
		{"ok, a zero rate everywhere: 0 to 100%", 0, 0.001, 0.5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, n := yTicks(tc.hi, tc.minStep)
			if math.Abs(step-tc.step) > 1e-12 || n != tc.n {
				t.Errorf("yTicks(%v, %v) = %v × %d, want %v × %d", tc.hi, tc.minStep, step, n, tc.step, tc.n)
			}
		})
	}
	for hi := 0.0007; hi < 1e6; hi *= 1.37 {
		step, n := yTicks(hi, 0)
		top := step * float64(n)
		if !isNice(step) {
			t.Errorf("max %v: step %v is not 1, 2 or 5 × 10^k", hi, step)
		}
		if top < hi*(1-1e-9) || float64(n-1)*step >= hi {
			t.Errorf("max %v: top tick %v is not the first multiple of %v at or above it", hi, top, step)
		}
		if n < 2 || n > 4 {
			t.Errorf("max %v: %d steps, want 2 to 4", hi, n)
		}
	}
}

func isNice(step float64) bool {
	m := step / math.Pow(10, math.Floor(math.Log10(step)+1e-9))
	for _, nice := range []float64{1, 2, 5} {
		if math.Abs(m-nice) < 1e-9 {
			return true
		}
	}
	return false
}

func TestChartLabelsStayInsideTheViewBox(t *testing.T) {
	day0 := time.Date(2026, time.May, 1, 0, 0, 0, 0, time.UTC)
	for _, days := range []int{1, 2, 7, 16, 31, 90} {
		t.Run(strconv.Itoa(days)+" days", func(t *testing.T) {
			var series []results.ReportDay
			for i := range days {
				series = append(series, results.ReportDay{Day: day0.AddDate(0, 0, i), Buckets: []results.ReportDayBucket{
					{Index: 0, Participants: int64(1000 * i), Rate: 0.999},
					{Index: 1, Participants: int64(1234 * i), Rate: 0.5},
				}})
			}
			for _, c := range []*chart{participantsChart(series), rateChart("upgrade", series)} {
				last := series[len(series)-1].Day.Format(dayFormat)
				if got := c.XTicks[len(c.XTicks)-1].Label; got != last {
					t.Errorf("%s: the last x label is %q, want the last day %q", c.Title, got, last)
				}
				prevEnd := math.Inf(-1)
				for _, x := range c.XTicks {
					half := labelWidth(x.Label) / 2
					if x.Pos-half < 0 || x.Pos+half > float64(c.Width) {
						t.Errorf("%s: x label %q spans %.1f to %.1f, outside 0 to %d", c.Title, x.Label, x.Pos-half, x.Pos+half, c.Width)
					}
					if x.Pos-half < prevEnd {
						t.Errorf("%s: x label %q overlaps the one before", c.Title, x.Label)
					}
					prevEnd = x.Pos + half
				}
				for _, y := range c.YTicks {
					if start := float64(c.YLabelX) - labelWidth(y.Label); start < 0 || c.YLabelX >= c.Left {
						t.Errorf("%s: y label %q spans %.1f to %d, outside 0 to the plot's left %d", c.Title, y.Label, start, c.YLabelX, c.Left)
					}
				}
				for _, l := range c.Lines {
					for _, p := range l.Dots {
						if p.X < float64(c.Left) || p.X > float64(c.Right) || p.Y < float64(c.Top) || p.Y > float64(c.Bottom) {
							t.Errorf("%s: point %v outside the plot", c.Title, p)
						}
					}
				}
			}
		})
	}
}
