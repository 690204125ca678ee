package bench_test

import "testing"

// TestSplit checks that each benchmark evaluates a real experiment: of
// 10,000 users, 45% to 55% are in bucket 1 and the rest in bucket 0, and
// a second evaluation (in a new request, for this package) gives every
// user the same bucket.
func TestSplit(t *testing.T) {
	ids := userIDs(10000)
	a := newABKit(t, ids)
	growthBook := newGrowthBook(t)
	launchDarkly := newLaunchDarkly(t)
	unleashClient := newUnleash(t)
	goFeatureFlag := newGoFeatureFlag(t)
	for _, sdk := range []struct {
		name   string
		bucket func(tb testing.TB, i int) int
	}{
		{"abkit", func(_ testing.TB, i int) int { return a.bucket(i) }},
		{"GrowthBook", func(tb testing.TB, i int) int { return growthBookBucket(tb, growthBook, ids[i]) }},
		{"LaunchDarkly", func(tb testing.TB, i int) int { return launchDarklyBucket(tb, launchDarkly, ids[i]) }},
		{"Unleash", func(tb testing.TB, i int) int { return unleashBucket(tb, unleashClient, ids[i]) }},
		{"GoFeatureFlag", func(tb testing.TB, i int) int { return goFeatureFlagBucket(tb, goFeatureFlag, ids[i]) }},
	} {
		t.Run(sdk.name, func(t *testing.T) {
			ones := 0
			for i := range ids {
				b := sdk.bucket(t, i)
				if b != 0 && b != 1 {
					t.Fatalf("%s: bucket %d, want 0 or 1", ids[i], b)
				}
				if again := sdk.bucket(t, i); again != b {
					t.Fatalf("%s: bucket %d then %d", ids[i], b, again)
				}
				ones += b
			}
			if share := float64(ones) / float64(len(ids)); share < 0.45 || share > 0.55 {
				t.Errorf("%d of %d users in bucket 1 (%.1f%%), want 45%% to 55%%", ones, len(ids), 100*share)
			} else {
				t.Logf("%.1f%% in bucket 1", 100*share)
			}
		})
	}
}
