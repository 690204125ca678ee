package storetest

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/abkit/experiments"
)

// Sticky assignments: what a store that implements experiments.Assignments
// remembers, and the decisions of flags made WithStickyBuckets on it.

var (
	stickyTwo   = experiments.NewFlagSet().NewFlag("storetest", "sticky", experiments.WithBuckets(2), experiments.WithStickyBuckets(true))
	stickyThree = experiments.NewFlagSet().NewFlag("storetest", "sticky", experiments.WithBuckets(3), experiments.WithStickyBuckets(true))
	plainThree  = experiments.NewFlagSet().NewFlag("storetest", "sticky", experiments.WithBuckets(3))
)

// setUpAssignments is setUp for a test of experiments.Assignments: skipped
// unless the store implements it.
func setUpAssignments(t *testing.T, newStore func(*testing.T) Store) (*fixture, experiments.Assignments) {
	t.Helper()
	f := setUp(t, newStore)
	a, ok := f.s.(experiments.Assignments)
	if !ok {
		t.Skipf("%T is not an experiments.Assignments: its sticky buckets are not checked", f.s)
	}
	return f, a
}

// wantAssignment checks what a remembers for user in experiment.
func (f *fixture) wantAssignment(a experiments.Assignments, user, experiment string, bucket int, found bool) {
	f.t.Helper()
	b, ok, err := a.Assignment(f.ctx, user, experiment)
	if err != nil || ok != found || found && b != bucket {
		want := "none"
		if found {
			want = "bucket " + strconv.Itoa(bucket)
		}
		f.t.Errorf("Assignment(%.40q, %.40q) = %d, %v, %v; want %s", user, experiment, b, ok, err, want)
	}
}

func (f *fixture) save(a experiments.Assignments, user, experiment string, bucket int) {
	f.t.Helper()
	if err := a.SaveAssignment(f.ctx, user, experiment, bucket); err != nil {
		f.t.Fatalf("SaveAssignment(%.40q, %.40q, %d): %v", user, experiment, bucket, err)
	}
}

// stickyUsers are n users for the sticky decisions.
func stickyUsers(n int) []experiments.User {
	users := make([]experiments.User, n)
	for i := range users {
		users[i] = experiments.User{ID: "sticky-" + strconv.Itoa(i)}
	}
	return users
}

// stickyHashed is the bucket the default hasher gives u in the sticky
// flags' experiment for courseKey.
func stickyHashed(u experiments.User, courseKey string, buckets int) int {
	return experiments.SHA256Bucket(stickyTwo.AssignmentKey(courseKey), u.ID, buckets)
}

func testAssignments(t *testing.T, newStore func(*testing.T) Store) {
	exp := stickyTwo.AssignmentKey(courseA)
	t.Run("ok, nothing remembered is not found, without an error", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		f.wantAssignment(a, alice.ID, exp, 0, false)
	})
	t.Run("ok, a saved bucket reads back, per user and experiment", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		f.save(a, alice.ID, exp, 1)
		f.save(a, bob.ID, stickyTwo.AssignmentKey(""), 0)
		f.wantAssignment(a, alice.ID, exp, 1, true)
		f.wantAssignment(a, bob.ID, stickyTwo.AssignmentKey(""), 0, true)
		f.wantAssignment(a, bob.ID, exp, 0, false)
		f.wantAssignment(a, alice.ID, stickyTwo.AssignmentKey(""), 0, false)
		f.wantAssignment(a, alice.ID, stickyTwo.AssignmentKey(courseB), 0, false)
	})
	t.Run("ok, a larger bucket saved later keeps the first", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		f.save(a, alice.ID, exp, 1)
		f.save(a, alice.ID, exp, 2)
		f.wantAssignment(a, alice.ID, exp, 1, true)
	})
	t.Run("ok, a smaller bucket saved later replaces a larger one", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		f.save(a, alice.ID, exp, 2)
		f.save(a, alice.ID, exp, 0)
		f.wantAssignment(a, alice.ID, exp, 0, true)
	})
	t.Run("ok, concurrent saves keep the smallest bucket", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if err := a.SaveAssignment(f.ctx, alice.ID, exp, 3+i%7); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		f.wantAssignment(a, alice.ID, exp, 3, true)
	})
	t.Run("ok, the longest keys and any printable Unicode are kept", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		user := strings.Repeat("ü", 127) + "x" // 255 bytes
		long := strings.Repeat("e", 512)
		odd := stickyTwo.AssignmentKey("course-v1:Ünï+c'o\"urse;--+2026 ✓")
		f.save(a, user, long, 1023)
		f.save(a, alice.ID, odd, 1)
		f.wantAssignment(a, user, long, 1023, true)
		f.wantAssignment(a, alice.ID, odd, 1, true)
		f.wantAssignment(a, alice.ID, strings.ToUpper(odd), 0, false)
	})
	t.Run("nok, bad input is refused with ErrInvalid and not found", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		cases := []struct {
			name, user, experiment string
			bucket                 int
		}{
			{"an empty user ID", "", exp, 1},
			{"a user ID of 256 bytes", strings.Repeat("u", 256), exp, 1},
			{"a user ID with a NUL", "ali\x00ce", exp, 1},
			{"a user ID that is not UTF-8", "ali\xffce", exp, 1},
			{"an empty experiment", alice.ID, "", 1},
			{"an experiment of 513 bytes", alice.ID, strings.Repeat("e", 513), 1},
			{"an experiment with a newline", alice.ID, exp + "\n", 1},
			{"bucket -1", alice.ID, exp, -1},
			{"bucket 1024", alice.ID, exp, 1024},
		}
		for _, c := range cases {
			if err := a.SaveAssignment(f.ctx, c.user, c.experiment, c.bucket); !errors.Is(err, experiments.ErrInvalid) {
				t.Errorf("%s: SaveAssignment = %v, want ErrInvalid", c.name, err)
			}
			if err := experiments.ValidateAssignment(c.user, c.experiment, c.bucket); !errors.Is(err, experiments.ErrInvalid) {
				t.Errorf("%s: ValidateAssignment = %v, want ErrInvalid", c.name, err)
			}
			if c.bucket >= 0 && c.bucket < 1024 {
				f.wantAssignment(a, c.user, c.experiment, 0, false)
			}
		}
		f.wantAssignment(a, alice.ID, exp, 0, false)
	})
	t.Run("ok, assignments are not configuration", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		f.apply(setFlag(stickyTwo.Name(), experiments.On()))
		before := f.data()
		f.save(a, alice.ID, exp, 1)
		f.checkDecision(stickyTwo, alice, courseA, want{bucket: 1, reason: experiments.ReasonSticky})
		if after := f.data(); !reflect.DeepEqual(before, after) {
			t.Errorf("Data() changed with an assignment: %+v, was %+v", after, before)
		}
	})

	t.Run("ok, sticky users keep their bucket when the flag gets a bucket more", func(t *testing.T) {
		f, _ := setUpAssignments(t, newStore)
		f.apply(setFlag(stickyTwo.Name(), experiments.On()))
		users := stickyUsers(40)
		for _, u := range users {
			f.checkDecision(stickyTwo, u, courseA, want{bucket: stickyHashed(u, courseA, 2), reason: experiments.ReasonHashed})
		}
		moved := 0
		for _, u := range users {
			f.checkDecision(stickyThree, u, courseA, want{bucket: stickyHashed(u, courseA, 2), reason: experiments.ReasonSticky})
			if stickyHashed(u, courseA, 3) != stickyHashed(u, courseA, 2) {
				moved++
			}
			f.checkDecision(plainThree, u, courseA, want{bucket: stickyHashed(u, courseA, 3), reason: experiments.ReasonHashed})
		}
		if moved == 0 {
			t.Error("no user moves from 2 to 3 buckets without stickiness: the test proves nothing")
		}
	})
	t.Run("ok, sticky users keep their bucket when the percent is lowered", func(t *testing.T) {
		f, _ := setUpAssignments(t, newStore)
		f.apply(setFlag(stickyTwo.Name(), experiments.Rule{Percent: 100}))
		users := stickyUsers(40)
		for _, u := range users {
			f.decide(stickyTwo, u, "")
		}
		f.apply(setFlag(stickyTwo.Name(), experiments.Rule{Percent: 10}))
		out := 0
		for _, u := range users {
			f.checkDecision(stickyTwo, u, "", want{bucket: stickyHashed(u, "", 2), reason: experiments.ReasonSticky})
			if !f.on(stickyTwo, u, "") {
				out++
			}
		}
		if out == 0 {
			t.Error("no user is out of 10%: the test proves nothing")
		}
		newcomer := experiments.User{ID: "newcomer"}
		for i := 0; f.on(stickyTwo, newcomer, ""); i++ {
			newcomer.ID = "newcomer-" + strconv.Itoa(i)
		}
		f.checkDecision(stickyTwo, newcomer, "", flagOff)
	})
	t.Run("ok, a bucket the flag no longer has is hashed again and saved over", func(t *testing.T) {
		f, a := setUpAssignments(t, newStore)
		f.apply(setFlag(stickyTwo.Name(), experiments.On()))
		u := stickyUsers(1)[0]
		for i := 0; stickyHashed(u, courseA, 3) != 2; i++ {
			u.ID = "rehash-" + strconv.Itoa(i)
		}
		f.checkDecision(stickyThree, u, courseA, want{bucket: 2, reason: experiments.ReasonHashed})
		now := stickyHashed(u, courseA, 2)
		f.checkDecision(stickyTwo, u, courseA, want{bucket: now, reason: experiments.ReasonHashed})
		f.wantAssignment(a, u.ID, exp, now, true)
		f.checkDecision(stickyThree, u, courseA, want{bucket: now, reason: experiments.ReasonSticky})
	})
	t.Run("nok, the main flag off gives control to sticky users", func(t *testing.T) {
		f, _ := setUpAssignments(t, newStore)
		f.apply(setFlag(stickyTwo.Name(), experiments.On()))
		f.decide(stickyTwo, alice, courseA)
		f.apply(setFlag(stickyTwo.Name(), experiments.Off()))
		f.checkDecision(stickyTwo, alice, courseA, flagOff)
		f.apply(setFlag(stickyTwo.Name(), experiments.Rule{Percent: 1}), courseOverride(stickyTwo.Name(), courseA, experiments.ForceOff))
		f.checkDecision(stickyTwo, alice, courseA, flagOff)
	})
}
