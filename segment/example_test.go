package segment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/segment"
)

// exampleFlag is the experiment of ExampleNew.
var exampleFlag = experiments.NewFlag("course_experience", "example_segment")

// Send the "user bucketed" events to Segment through analytics-go. A local
// server stands in for api.segment.io and prints the messages it receives.
func ExampleNew() {
	fakeSegment := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Batch []struct {
				UserID     string          `json:"userId"`
				Event      string          `json:"event"`
				Properties json.RawMessage `json:"properties"`
			} `json:"batch"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, m := range body.Batch {
			fmt.Println(m.Event, "userId", m.UserID)
			fmt.Println(string(m.Properties))
		}
	}))
	defer fakeSegment.Close()

	ctx := context.Background()
	tracker, err := segment.New("YOUR_WRITE_KEY", segment.WithEndpoint(fakeSegment.URL))
	if err != nil {
		panic(err)
	}

	store := experiments.NewMemStore()
	_ = store.SetFlag(ctx, exampleFlag.Name(), experiments.On())
	x := experiments.New(experiments.Config{Store: store, Tracker: tracker, Site: "learn.example.org"})

	rctx := x.NewContext(ctx, experiments.User{ID: "42"})
	fmt.Println("bucket", exampleFlag.Bucket(rctx, ""))

	// At shutdown: send what is queued.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tracker.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%+v\n", tracker.Stats())
	// Output:
	// bucket 0
	// edx.bi.experiment.user.bucketed userId 42
	// {"app_label":"course_experience","bucket":0,"course_id":null,"experiment":"example_segment","is_staff":false,"nonInteraction":1,"site":"learn.example.org"}
	// {Queued:0 Written:1 Dropped:0 Batches:1 FailedBatches:0 Retries:0}
}
