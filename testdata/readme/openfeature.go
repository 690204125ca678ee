// README "OpenFeature": a flag evaluated through the OpenFeature client
// gives the bucket Bucket gives.
package main

import (
	"context"
	"net/http/httptest"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
)

//readme:imports 1

var upgradeButton = experiments.NewFlag("course_experience", "upgrade_button")

func main() {
	store := experiments.NewMemStore()
	readmecheck.Must(store.SetFlag(context.Background(), upgradeButton.Name(), experiments.On()))
	x := experiments.New(experiments.Config{Store: store})
	user := experiments.User{ID: "42", Username: "user42"}
	courseKey := "course-v1:edX+DemoX+2026"
	r := httptest.NewRequest("GET", "/courses/"+courseKey, nil)
	r = r.WithContext(x.NewContext(r.Context(), user))

	//readme:block 1

	if want := experiments.SHA256Bucket(upgradeButton.Name()+"."+courseKey, user.ID, 2); bucket != int64(want) {
		readmecheck.Failf("IntValue = %d, want bucket %d", bucket, want)
	}
}
