package results_test

import (
	"fmt"
	"time"

	"github.com/abkit/experiments/results"
)

func Example() {
	buckets := []results.Bucket{
		{Index: 0, Participants: 1000, Conversions: 48},
		{Index: 1, Participants: 1000, Conversions: 70},
	}
	srm := results.SampleRatioMismatch([]int64{1000, 1000}, nil) // even split expected
	cmps, err := results.AgainstControl(buckets, results.CompareRates)
	if err != nil {
		panic(err)
	}
	c := cmps[0]
	fmt.Printf("rates %.1f%% vs %.1f%%, difference %+.2f points [%+.2f, %+.2f], p = %.4f\n",
		100*c.ControlValue, 100*c.VariantValue,
		100*c.Difference.Estimate, 100*c.Difference.Low, 100*c.Difference.High, c.PValue)
	fmt.Printf("lift %+.0f%% [%+.0f%%, %+.0f%%]\n", 100*c.Lift.Estimate, 100*c.Lift.Low, 100*c.Lift.High)
	fmt.Println(results.Verdict(srm, cmps))
	// Output:
	// rates 4.8% vs 7.0%, difference +2.20 points [+0.14, +4.26], p = 0.0368
	// lift +46% [+2%, +108%]
	// bucket 1 beats control with 96% confidence
}

func ExampleCompareMeans() {
	// Revenue per participant, aggregated as n, Σv and Σv².
	var control, variant results.Bucket
	variant.Index = 1
	for _, v := range []float64{12.1, 9.8, 11.4, 10.2, 13.5, 8.7, 10.9} {
		control.Participants++
		control.ValueSum += v
		control.ValueSumSquares += v * v
	}
	for _, v := range []float64{14.2, 12.8, 15.1, 11.9, 13.3, 16.0, 12.5, 14.7} {
		variant.Participants++
		variant.ValueSum += v
		variant.ValueSumSquares += v * v
	}
	c := results.CompareMeans(control, variant)
	fmt.Printf("means %.3f vs %.3f, t = %.3f on %.2f df, p = %.4f\n",
		c.ControlValue, c.VariantValue, c.Statistic, c.DF, c.PValue)
	fmt.Printf("difference %.3f [%.3f, %.3f]\n", c.Difference.Estimate, c.Difference.Low, c.Difference.High)
	// Output:
	// means 10.943 vs 13.812, t = 3.682 on 12.23 df, p = 0.0030
	// difference 2.870 [1.175, 4.564]
}

func ExampleSampleRatioMismatch() {
	// 50/50 was configured; 50,600 and 49,400 arrived.
	s := results.SampleRatioMismatch([]int64{50600, 49400}, []float64{50, 50})
	fmt.Printf("chi-square %.1f, p = %.5f, mismatch %v\n", s.ChiSquare, s.PValue, s.Mismatch)
	fmt.Println(results.Verdict(s, nil))
	// Output:
	// chi-square 14.4, p = 0.00015, mismatch true
	// sample ratio mismatch: investigate before reading results
}

func ExampleVerdict() {
	buckets := []results.Bucket{
		{Index: 0, Participants: 10000, Conversions: 500},
		{Index: 1, Participants: 10000, Conversions: 560},
		{Index: 2, Participants: 10000, Conversions: 610},
		{Index: 3, Participants: 10000, Conversions: 480},
	}
	srm := results.SampleRatioMismatch([]int64{10000, 10000, 10000, 10000}, nil)
	cmps, _ := results.AgainstControl(buckets, results.CompareRates)
	r := results.Verdict(srm, cmps)
	fmt.Println(r.Text)
	fmt.Println(r.Detail)
	// Output:
	// bucket 2 beats control with 99% confidence
	// 3 comparisons read, confidence adjusted for multiple comparisons (Holm)
}

func ExampleCumulative() {
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	series := results.Cumulative([]results.DailyBucket{
		{Day: day(1), Bucket: results.Bucket{Index: 0, Participants: 100, Conversions: 5}},
		{Day: day(1), Bucket: results.Bucket{Index: 1, Participants: 98, Conversions: 9}},
		{Day: day(2), Bucket: results.Bucket{Index: 0, Participants: 120, Conversions: 4}},
		{Day: day(2), Bucket: results.Bucket{Index: 1, Participants: 125, Conversions: 8}},
	})
	for _, p := range series {
		fmt.Print(p.Day.Format(time.DateOnly))
		for _, b := range p.Buckets {
			fmt.Printf("  bucket %d: %d participants, %.1f%%", b.Index, b.Participants, 100*b.Rate())
		}
		fmt.Println()
	}
	// Output:
	// 2026-03-01  bucket 0: 100 participants, 5.0%  bucket 1: 98 participants, 9.2%
	// 2026-03-02  bucket 0: 220 participants, 4.1%  bucket 1: 223 participants, 7.6%
}
