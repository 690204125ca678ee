// Package bench compares the first bucketing decision of
// github.com/abkit/experiments with other feature-flag SDKs evaluating the
// same 2-bucket, 50/50 experiment for the same users. It holds only tests
// and benchmarks, in a module of its own so that the library does not
// depend on the SDKs it is compared with. See README.md.
package bench
