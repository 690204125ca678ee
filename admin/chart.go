package admin

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/abkit/experiments/results"
)

// chart is a line chart drawn as SVG by the templates: one line per
// bucket over days. Coordinates are computed here, in the units of the
// SVG's viewBox (0 0 Width Height); the template only writes them out,
// escaped, and the stylesheet scales the SVG to its box.
type chart struct {
	Title         string
	Width, Height int
	Left, Bottom  int // the plot's left and bottom edges
	Right, Top    int
	YLabelX       int // where the y labels end (text-anchor end)
	Lines         []chartLine
	YTicks        []tick
	XTicks        []tick // Pos is the label's middle (text-anchor middle)
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
	// The viewBox is about as wide as a chart's box when two charts
	// sit side by side on a wide screen, so that text is drawn at about
	// its CSS size there.
	chartWidth, chartHeight = 500, 220
	chartTop, chartBottom   = 12, 190
	// axisFontSize is the font size of the axes' labels, in viewBox
	// units (svg .axis in admin.css).
	axisFontSize = 11
	// labelGap is the room between a y label and the plot, and between
	// a label and the viewBox's edge.
	labelGap = 6
	// dayFormat is the x labels' format; dayWidest is its widest value.
	dayFormat, dayWidest = "Jan 2", "May 30"
)

// labelWidth is an upper estimate of the width of label in the axes'
// font, in viewBox units: 0.62em a character is more than the digits,
// letters and signs of the labels take in a proportional sans-serif.
func labelWidth(label string) float64 {
	return 0.62 * axisFontSize * float64(utf8.RuneCountInString(label))
}

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
// Every label lies inside the viewBox.
func lineChart(title string, series []results.ReportDay, minStep float64, value func(results.ReportDayBucket) float64, label func(float64) string) *chart {
	if len(series) == 0 {
		return nil
	}
	hi := 0.0
	for _, d := range series {
		for _, b := range d.Buckets {
			hi = math.Max(hi, value(b))
		}
	}
	step, n := yTicks(hi, minStep)
	top := step * float64(n)

	c := &chart{Title: title, Width: chartWidth, Height: chartHeight, Top: chartTop, Bottom: chartBottom}
	// The y labels, right-aligned, end labelGap left of the plot: the
	// plot starts right of the widest.
	widest := 0.0
	for i := 0; i <= n; i++ {
		c.YTicks = append(c.YTicks, tick{Label: label(float64(i) * step)})
		widest = math.Max(widest, labelWidth(c.YTicks[i].Label))
	}
	c.Left = int(math.Ceil(labelGap + widest + labelGap))
	c.YLabelX = c.Left - labelGap
	// The x labels are centred on their day: the last day sits half the
	// widest label in from the right edge.
	c.Right = chartWidth - int(math.Ceil(labelWidth(dayWidest)/2+labelGap))

	first, last := series[0].Day, series[len(series)-1].Day
	days := last.Sub(first).Hours() / 24
	x := func(day time.Time) float64 {
		if days == 0 {
			return float64(c.Left+c.Right) / 2
		}
		return float64(c.Left) + float64(c.Right-c.Left)*day.Sub(first).Hours()/24/days
	}
	y := func(v float64) float64 {
		return float64(chartBottom) - float64(chartBottom-chartTop)*v/top
	}
	for i := range c.YTicks {
		c.YTicks[i].Pos = round1(y(float64(i) * step))
	}
	// Label about six days, counted back from the last, so that the
	// latest day always has its label and no two labels crowd.
	every := max(1, len(series)/6)
	for i, d := range series {
		if (len(series)-1-i)%every != 0 {
			continue
		}
		l := d.Day.Format(dayFormat)
		half := labelWidth(l) / 2
		pos := math.Min(math.Max(x(d.Day), half+1), chartWidth-half-1)
		c.XTicks = append(c.XTicks, tick{Pos: round1(pos), Label: l})
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

// yTicks returns the y axis' gridlines for values up to hi: n steps of
// step from 0, step being 1, 2 or 5 times a power of ten, at least
// minStep, and n*step the first multiple of step at or above hi (2 to 4
// steps). When hi is 0 or less the axis runs from 0 to 1.
func yTicks(hi, minStep float64) (step float64, n int) {
	if !(hi > 0) { // also NaN
		hi = 1
	}
	step = math.Max(minStep, niceStep(hi/4))
	// Tolerate the rounding of hi/step: 0.15/0.05 is 2.9999999999999996.
	n = max(1, int(math.Ceil(hi/step-1e-9)))
	return step, n
}

// niceStep rounds s up to 1, 2 or 5 times a power of ten.
func niceStep(s float64) float64 {
	if s <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(s)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= s*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
