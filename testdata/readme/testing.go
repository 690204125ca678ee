// README "Using it in tests": the two test functions, run as go test
// runs them.
package main

import (
	"context"
	"testing"

	"github.com/abkit/experiments"
)

var upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")

//readme:block 1

func main() {
	testing.Main(func(pat, str string) (bool, error) { return true, nil }, []testing.InternalTest{
		{Name: "TestUpgradeButton", F: TestUpgradeButton},
		{Name: "TestParallel", F: TestParallel},
		{Name: "TestTheOverridesHold", F: func(t *testing.T) {
			defer upgradeButton.Override(true, 1)()
			if b := upgradeButton.Bucket(context.Background(), ""); b != 1 {
				t.Errorf("Bucket under Override(true, 1) = %d", b)
			}
			ctx := upgradeButton.WithOverride(context.Background(), true, 0)
			if upgradeButton.Bucket(ctx, "") != 0 || !upgradeButton.IsExperimentOn(ctx, "") {
				t.Error("WithOverride(ctx, true, 0) does not hold in ctx")
			}
		}},
	}, nil, nil)
}
