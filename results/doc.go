// Package results turns an experiment's per-bucket aggregates into the
// figures and the plain-words verdict of a results page: conversion
// rates and mean values per participant, the difference and relative
// lift of each bucket against control (bucket 0) with 95% confidence
// intervals and two-sided p-values, a sample-ratio-mismatch check of the
// split, a gae_bingo-style verdict, and cumulative daily series.
//
// The statistics are pure functions of their arguments: no I/O, no
// state, safe for concurrent use. Distributions come from gonum's
// stat/distuv; the tests hold reference figures computed with R.
//
// Reports start from the recorded data: a Source aggregates an
// experiment's exposures and conversions per bucket and day (Memory
// does it in memory and is the reference for stores that do it in their
// database; Source documents the exact semantics), and Build turns the
// aggregates into a Report, which WriteText prints and encoding/json
// marshals:
//
//	src := results.NewMemory(store.Exposures(), store.Conversions())
//	r, err := results.Build(ctx, src, results.Query{
//		Experiment: results.Experiment{Flag: "shop.checkout"},
//		Goal:       goals["purchase"], // Snapshot(ctx).Data().Goals
//	})
//	if err != nil {
//		return err // ErrNoExposures, an invalid goal, ErrBucketOutOfRange
//	}
//	r.WriteText(os.Stdout)
//
//	buckets := []results.Bucket{
//		{Index: 0, Participants: 1000, Conversions: 48},
//		{Index: 1, Participants: 1000, Conversions: 70},
//	}
//	srm := results.SampleRatioMismatch([]int64{1000, 1000}, nil)
//	cmps, err := results.AgainstControl(buckets, results.CompareRates)
//	if err != nil {
//		return err // no bucket 0, or a bucket given twice
//	}
//	fmt.Println(results.Verdict(srm, cmps)) // bucket 1 beats control with 96% confidence
//
// Reports carry a cumulative series per UTC day and one per week, weeks
// starting on Monday in Query.Zone (UTC by default), DST included.
// BuildBreakdown splits a report by a dimension recorded with the
// exposures (experiments.Config.Dimensions: a browser, a site, an
// attribute), one full Report per value, from a BreakdownSource; its
// p-values are not adjusted across values (see Breakdown).
//
// An experiment is a flag in one course (or in none); Experiment's
// AllCourses pools a flag's courses, each user counting once, in the
// bucket of their first exposure.
//
// The statistics:
//
//   - CompareRates: the two-proportion z-test with the pooled standard
//     error (R's prop.test with correct=FALSE), a Wald interval for the
//     difference, Katz's log interval for the lift.
//   - CompareMeans: Welch's t-test with Welch–Satterthwaite degrees of
//     freedom (R's t.test), a t interval for the difference, a
//     delta-method log interval for the lift. The variance comes from
//     sums and sums of squares; see Bucket.Variance for its precision.
//   - SampleRatioMismatch: Pearson's chi-square goodness of fit against
//     the expected weights, flagged below SRMThreshold (0.001).
//
// Numbers never come out NaN or infinite: a comparison that cannot be
// computed (no participants, no variation, impossible counts) says so in
// its Err field and reports PValue 1.
package results
