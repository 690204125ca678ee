// README "PostgreSQL": the store opened on DATABASE_URL.
package main

import (
	"context"
	"log"
	"os"

	"github.com/abkit/experiments"
	"github.com/abkit/experiments/internal/readmecheck"
	"github.com/abkit/experiments/sqlstore"
)

func main() {
	ctx := context.Background()

	//readme:block 1

	flag := experiments.NewFlag("course_experience", "upgrade_button")
	readmecheck.Must(store.SetFlag(ctx, flag.Name(), experiments.On()))
	readmecheck.Decision("a flag set in PostgreSQL", flag.Decide(x.NewContext(ctx, experiments.User{ID: "42"}), ""),
		experiments.SHA256Bucket(flag.Name(), "42", 2), experiments.ReasonHashed)
}
