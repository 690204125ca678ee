package admin

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/abkit/experiments/results"
)

// chart is a line chart drawn as SVG by the templates: one line per
// bucket over days. Coordinates are computed here; the template only
// writes them out, escaped.
type chart struct {
	Title         string
	Width, Height int
	Left, Bottom  int // the plot's left and bottom edges
	Right, Top    int
	Lines         []chartLine
	YTicks        []tick
	XTicks        []tick
}

type chartLine struct {
	Bucket int
	Class  string // the bucket's colour class, b0 to b7
	Points string // "x,y x,y …"
	Dots   []point
	Last   string // the last value, for the legend
}

type point struct{ X, Y float64 }

type tick struct {
	Pos   float64
	Label string
}

const (
	chartWidth, chartHeight = 600, 220
	chartLeft, chartRight   = 56, 590
	chartTop, chartBottom   = 12, 190
)

// participantsChart charts the cumulative participants per bucket.
func participantsChart(series []results.ReportDay) *chart {
	return lineChart("Participants per bucket", series, 1, func(b results.ReportDayBucket) float64 { return float64(b.Participants) },
		func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) })
}

// rateChart charts the cumulative conversion rate per bucket.
func rateChart(goal string, series []results.ReportDay) *chart {
	return lineChart("Conversion rate per bucket: "+goal, series, 0.001, func(b results.ReportDayBucket) float64 { return b.Rate },
		func(v float64) string { return strconv.FormatFloat(100*v, 'f', 1, 64) + "%" })
}

// lineChart plots value of each bucket on each day of series, with
// gridlines at least minStep apart; nil when there is nothing to plot.
func lineChart(title string, series []results.ReportDay, minStep float64, value func(results.ReportDayBucket) float64, label func(float64) string) *chart {
	if len(series) == 0 {
		return nil
	}
	c := &chart{Title: title, Width: chartWidth, Height: chartHeight, Left: chartLeft, Right: chartRight, Top: chartTop, Bottom: chartBottom}
	hi := 0.0
	for _, d := range series {
		for _, b := range d.Buckets {
			hi = math.Max(hi, value(b))
		}
	}
	step := max(minStep, niceStep(hi/4))
	top := step * 4
	for top < hi {
		top += step
	}
	first, last := series[0].Day, series[len(series)-1].Day
	days := last.Sub(first).Hours() / 24
	x := func(day time.Time) float64 {
		if days == 0 {
			return float64(chartLeft+chartRight) / 2
		}
		return chartLeft + (chartRight-chartLeft)*day.Sub(first).Hours()/24/days
	}
	y := func(v float64) float64 { return chartBottom - (chartBottom-chartTop)*v/top }
	for v := 0.0; v <= top*1.0000001; v += step {
		c.YTicks = append(c.YTicks, tick{Pos: round1(y(v)), Label: label(v)})
	}
	every := max(1, len(series)/6)
	for i, d := range series {
		if i%every == 0 || i == len(series)-1 {
			c.XTicks = append(c.XTicks, tick{Pos: round1(x(d.Day)), Label: d.Day.Format("Jan 2")})
		}
	}
	for i := range series[0].Buckets {
		l := chartLine{Bucket: i, Class: "b" + strconv.Itoa(i%8)}
		var pts []string
		for _, d := range series {
			if i >= len(d.Buckets) {
				continue
			}
			p := point{round1(x(d.Day)), round1(y(value(d.Buckets[i])))}
			l.Dots = append(l.Dots, p)
			pts = append(pts, strconv.FormatFloat(p.X, 'f', 1, 64)+","+strconv.FormatFloat(p.Y, 'f', 1, 64))
			l.Last = label(value(d.Buckets[i]))
		}
		l.Points = strings.Join(pts, " ")
		c.Lines = append(c.Lines, l)
	}
	return c
}

// niceStep rounds s up to 1, 2 or 5 times a power of ten.
func niceStep(s float64) float64 {
	if s <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(s)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= s {
			return m * p
		}
	}
	return 10 * p
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
