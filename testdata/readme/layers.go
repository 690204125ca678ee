// README "Mutually exclusive experiments": no user is in both.
package main

import (
	"context"
	"strconv"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

//readme:block 1

func main() {
	ctx := context.Background()
	store := experiments.NewMemStore()
	readmecheck.Must(store.SetFlag(ctx, oneClick.Name(), experiments.On()))
	readmecheck.Must(store.SetFlag(ctx, express.Name(), experiments.On()))
	x := experiments.New(experiments.Config{Store: store})
	in := map[experiments.Reason]int{}
	for i := range 1000 {
		u := x.NewContext(ctx, experiments.User{ID: strconv.Itoa(i)})
		a, b := oneClick.Decide(u, ""), express.Decide(u, "")
		if a.Reason == experiments.ReasonHashed && b.Reason == experiments.ReasonHashed {
			readmecheck.Failf("user %d is in both experiments", i)
		}
		in[a.Reason]++
		in[b.Reason]++
	}
	if in[experiments.ReasonHashed] < 700 || in[experiments.ReasonHashed] > 900 {
		readmecheck.Failf("%d of 1000 users in an experiment, want about 800", in[experiments.ReasonHashed])
	}
}
