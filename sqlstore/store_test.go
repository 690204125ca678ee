package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/abkit/experiments"
)

var testFlag = experiments.NewFlag("sqlstore_test", "main")

func TestOpenMigratesAndServesFlags(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.SetFlag(ctx, testFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	x := experiments.New(experiments.Config{Store: s})
	rctx := x.NewContext(ctx, experiments.User{ID: "1"})
	if !testFlag.IsExperimentOn(rctx, "") {
		t.Fatal("flag set through the store is not on in the same process")
	}
}

func TestChangesPropagateToAnotherStore(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	a := openStoreIn(t, schema)
	b := openStoreIn(t, schema)
	x := experiments.New(experiments.Config{Store: b})
	rctx := func() context.Context { return x.NewContext(ctx, experiments.User{ID: "1"}) }
	start := time.Now()
	if err := a.SetFlag(ctx, testFlag.Name(), experiments.On()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for !testFlag.IsExperimentOn(rctx(), "") {
		if time.Now().After(deadline) {
			t.Fatal("a change made through one store is not visible in another within 1 s")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("propagated in %v", time.Since(start))
}
