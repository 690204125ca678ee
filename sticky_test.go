package experiments_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/abkit/experiments"
)

// The flags of the sticky tests share one experiment, "sticky_test.exp",
// declared as the deploys that change it would: two buckets, then three,
// with and without WithStickyBuckets, each in a FlagSet of its own as each
// deploy is a process of its own.
var (
	stickyTwo   = experiments.NewFlagSet().NewFlag("sticky_test", "exp", experiments.WithBuckets(2), experiments.WithStickyBuckets(true))
	stickyThree = experiments.NewFlagSet().NewFlag("sticky_test", "exp", experiments.WithBuckets(3), experiments.WithStickyBuckets(true))
	plainTwo    = experiments.NewFlagSet().NewFlag("sticky_test", "exp", experiments.WithBuckets(2))
	plainThree  = experiments.NewFlagSet().NewFlag("sticky_test", "exp", experiments.WithBuckets(3))
	stickyWin   = experiments.NewFlagSet().NewFlag("sticky_test", "exp", experiments.WithBuckets(2), experiments.WithStickyBuckets(true),
		experiments.WithExperimentID(31))
	stickyUnaware = experiments.NewFlagSet().NewFlag("sticky_test", "exp", experiments.WithBuckets(2), experiments.WithStickyBuckets(true),
		experiments.WithCourseAwareBucketing(false))
)

const (
	stickyName   = "sticky_test.exp"
	stickyCourse = "course-v1:edX+Sticky+2026" // org edX
)

// stickyUsers are the users of the sticky tests.
func stickyUsers(n int) []experiments.User {
	users := make([]experiments.User, n)
	for i := range users {
		users[i] = experiments.User{ID: "s" + strconv.Itoa(i), Username: "sticky" + strconv.Itoa(i)}
	}
	return users
}

// stickyHash is the bucket the hash gives u in stickyName for course.
func stickyHash(u experiments.User, course string, buckets int) int {
	group := stickyName
	if course != "" {
		group += "." + course
	}
	return experiments.SHA256Bucket(group, u.ID, buckets)
}

// inPercent reports whether Rule.Percent p of stickyName takes u in.
func inPercent(u experiments.User, p float64) bool {
	return float64(experiments.SHA256Bucket("percent:"+stickyName, u.ID, 10000)) < p*100
}

// stickyUser returns the first user of stickyUsers that ok accepts.
func stickyUser(t *testing.T, ok func(u experiments.User) bool) experiments.User {
	t.Helper()
	for _, u := range stickyUsers(10000) {
		if ok(u) {
			return u
		}
	}
	t.Fatal("no user satisfies the condition")
	return experiments.User{}
}

// newcomer returns a user outside stickyUsers that ok accepts.
func newcomer(t *testing.T, ok func(u experiments.User) bool) experiments.User {
	t.Helper()
	for i := range 10000 {
		if u := (experiments.User{ID: "new" + strconv.Itoa(i)}); ok(u) {
			return u
		}
	}
	t.Fatal("no user satisfies the condition")
	return experiments.User{}
}

// assignmentsLog is a Config.Assignments around a MemStore that counts
// calls and fails or panics on demand.
type assignmentsLog struct {
	mem *experiments.MemStore

	mu                   sync.Mutex
	reads, saves         int
	readErr, saveErr     error
	readPanic, savePanic bool
}

func (a *assignmentsLog) Assignment(ctx context.Context, userID, experiment string) (int, bool, error) {
	a.mu.Lock()
	a.reads++
	err, p := a.readErr, a.readPanic
	a.mu.Unlock()
	if p {
		panic("assignments: read exploded")
	}
	if err != nil {
		return 0, false, err
	}
	return a.mem.Assignment(ctx, userID, experiment)
}

func (a *assignmentsLog) SaveAssignment(ctx context.Context, userID, experiment string, bucket int) error {
	a.mu.Lock()
	a.saves++
	err, p := a.saveErr, a.savePanic
	a.mu.Unlock()
	if p {
		panic("assignments: save exploded")
	}
	if err != nil {
		return err
	}
	return a.mem.SaveAssignment(ctx, userID, experiment, bucket)
}

func (a *assignmentsLog) counts() (reads, saves int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reads, a.saves
}

func (a *assignmentsLog) fail(readErr, saveErr error, readPanic, savePanic bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.readErr, a.saveErr, a.readPanic, a.savePanic = readErr, saveErr, readPanic, savePanic
}

// stickyRig is a MemStore, an Experiments on it whose Assignments is the
// store behind an assignmentsLog, and the Logger's output.
type stickyRig struct {
	store *experiments.MemStore
	asg   *assignmentsLog
	x     *experiments.Experiments
	logs  *logBuffer
}

func newStickyRig(t *testing.T, rule experiments.Rule) *stickyRig {
	t.Helper()
	r := &stickyRig{store: experiments.NewMemStore(), logs: new(logBuffer)}
	r.asg = &assignmentsLog{mem: r.store}
	unitSetFlag(t, r.store, stickyName, rule)
	r.x = experiments.New(experiments.Config{
		Store:       r.store,
		Assignments: r.asg,
		Logger:      slog.New(slog.NewTextHandler(r.logs, nil)),
	})
	return r
}

// decide decides f for u in course, in a request of its own.
func (r *stickyRig) decide(f *experiments.ExperimentFlag, u experiments.User, course string) experiments.Decision {
	return f.Decide(r.x.NewContext(context.Background(), u), course)
}

// remembered returns the bucket the store remembers for u in f's
// experiment in course.
func (r *stickyRig) remembered(t *testing.T, f *experiments.ExperimentFlag, u experiments.User, course string) (int, bool) {
	t.Helper()
	b, ok, err := r.store.Assignment(context.Background(), u.ID, f.AssignmentKey(course))
	if err != nil {
		t.Fatalf("Assignment: %v", err)
	}
	return b, ok
}

func (r *stickyRig) set(t *testing.T, name string, rule experiments.Rule) {
	t.Helper()
	unitSetFlag(t, r.store, name, rule)
}

func wantSticky(t *testing.T, what string, d experiments.Decision, bucket int, reason experiments.Reason) {
	t.Helper()
	if d.Bucket != bucket || d.Reason != reason || d.Err != nil {
		t.Errorf("%s: decision %+v, want bucket %d (%s) without error", what, d, bucket, reason)
	}
}

func TestStickyBucketsKeepUsersWhenBucketsAreAdded(t *testing.T) {
	for _, course := range []string{"", stickyCourse} {
		t.Run("course "+strconv.Quote(course), func(t *testing.T) {
			r := newStickyRig(t, experiments.On())
			users := stickyUsers(200)
			for _, u := range users {
				wantSticky(t, "first decision, 2 buckets", r.decide(stickyTwo, u, course), stickyHash(u, course, 2), experiments.ReasonHashed)
				if b, ok := r.remembered(t, stickyTwo, u, course); !ok || b != stickyHash(u, course, 2) {
					t.Fatalf("remembered %d, %v; want the hashed bucket %d", b, ok, stickyHash(u, course, 2))
				}
			}
			moved := 0
			for _, u := range users {
				first := stickyHash(u, course, 2)
				wantSticky(t, "sticky, 3 buckets", r.decide(stickyThree, u, course), first, experiments.ReasonSticky)
				d := r.decide(plainThree, u, course)
				wantSticky(t, "not sticky, 3 buckets", d, stickyHash(u, course, 3), experiments.ReasonHashed)
				if d.Bucket != first {
					moved++
				}
			}
			if moved < len(users)/4 {
				t.Errorf("without stickiness %d of %d users moved from 2 to 3 buckets; want many", moved, len(users))
			}
			if _, saves := r.asg.counts(); saves != len(users) {
				t.Errorf("%d saves, want %d: one per user, none for remembered buckets or flags that are not sticky", saves, len(users))
			}
		})
	}
}

func TestStickyBucketsKeepUsersWhenPercentIsLowered(t *testing.T) {
	r := newStickyRig(t, experiments.Rule{Percent: 100})
	users := stickyUsers(400)
	for _, u := range users {
		r.decide(stickyTwo, u, "")
	}
	r.set(t, stickyName, experiments.Rule{Percent: 50})
	out := 0
	for _, u := range users {
		wantSticky(t, "sticky at 50%", r.decide(stickyTwo, u, ""), stickyHash(u, "", 2), experiments.ReasonSticky)
		d := r.decide(plainTwo, u, "")
		if inPercent(u, 50) {
			wantSticky(t, "not sticky, in the 50%", d, stickyHash(u, "", 2), experiments.ReasonHashed)
		} else {
			out++
			wantSticky(t, "not sticky, out of the 50%", d, 0, experiments.ReasonFlagOff)
		}
	}
	if out < len(users)/4 {
		t.Fatalf("%d of %d users out of the 50%%: the test proves little", out, len(users))
	}

	t.Run("nok, a user never bucketed whom the percent leaves out gets control, and nothing is saved", func(t *testing.T) {
		u := newcomer(t, func(u experiments.User) bool { return !inPercent(u, 50) })
		_, savesBefore := r.asg.counts()
		wantSticky(t, "new user out of the 50%", r.decide(stickyTwo, u, ""), 0, experiments.ReasonFlagOff)
		if _, saves := r.asg.counts(); saves != savesBefore {
			t.Errorf("%d saves for a user the flag is off for", saves-savesBefore)
		}
		if _, ok := r.remembered(t, stickyTwo, u, ""); ok {
			t.Error("a bucket is remembered for a user the flag is off for")
		}
	})
	t.Run("ok, a user never bucketed whom the percent takes in is hashed and saved", func(t *testing.T) {
		u := newcomer(t, func(u experiments.User) bool { return inPercent(u, 50) })
		wantSticky(t, "new user in the 50%", r.decide(stickyTwo, u, ""), stickyHash(u, "", 2), experiments.ReasonHashed)
		if b, ok := r.remembered(t, stickyTwo, u, ""); !ok || b != stickyHash(u, "", 2) {
			t.Errorf("remembered %d, %v; want %d", b, ok, stickyHash(u, "", 2))
		}
	})
}

func TestStickyBucketsRehashWhenBucketsAreRemoved(t *testing.T) {
	r := newStickyRig(t, experiments.On())
	u := stickyUser(t, func(u experiments.User) bool { return stickyHash(u, stickyCourse, 3) == 2 })
	wantSticky(t, "3 buckets", r.decide(stickyThree, u, stickyCourse), 2, experiments.ReasonHashed)
	// Back to two buckets: bucket 2 is gone.
	now := stickyHash(u, stickyCourse, 2)
	wantSticky(t, "2 buckets", r.decide(stickyTwo, u, stickyCourse), now, experiments.ReasonHashed)
	if b, ok := r.remembered(t, stickyTwo, u, stickyCourse); !ok || b != now {
		t.Fatalf("remembered %d, %v; want the new hash %d saved over bucket 2", b, ok, now)
	}
	// Three again: the user keeps the bucket of the last hash.
	wantSticky(t, "3 buckets again", r.decide(stickyThree, u, stickyCourse), now, experiments.ReasonSticky)
}

func TestStickyBucketsGiveWayToOverridesAndTheMainFlag(t *testing.T) {
	// u was hashed into bucket 1 at 100%, and is out of a 50% rule.
	u := stickyUser(t, func(u experiments.User) bool {
		return stickyHash(u, stickyCourse, 2) == 1 && stickyHash(u, "", 2) == 1 && !inPercent(u, 50)
	})
	cases := []struct {
		name   string
		setup  func(t *testing.T, r *stickyRig)
		course string
		want   experiments.Decision
	}{
		{"nok, the main flag off for everyone gives control", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Off())
		}, stickyCourse, experiments.Decision{Reason: experiments.ReasonFlagOff}},
		{"nok, a deleted main flag gives control", func(t *testing.T, r *stickyRig) {
			if err := r.store.DeleteFlag(context.Background(), stickyName); err != nil {
				t.Fatal(err)
			}
		}, stickyCourse, experiments.Decision{Reason: experiments.ReasonFlagOff}},
		{"nok, percent 0 gives control", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Percent: 0})
		}, stickyCourse, experiments.Decision{Reason: experiments.ReasonFlagOff}},
		{"nok, a rule without percent that leaves the user out gives control", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Users: []string{"someone-else"}, Staff: true})
		}, stickyCourse, experiments.Decision{Reason: experiments.ReasonFlagOff}},
		{"nok, a course override ForceOff beats the remembered bucket under a percent", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Percent: 50})
			if err := r.store.SetCourseOverride(context.Background(), stickyName, stickyCourse, experiments.ForceOff); err != nil {
				t.Fatal(err)
			}
		}, stickyCourse, experiments.Decision{Reason: experiments.ReasonFlagOff}},
		{"nok, an org override ForceOff beats the remembered bucket under a percent", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Percent: 50})
			if err := r.store.SetOrgOverride(context.Background(), stickyName, "edX", experiments.ForceOff); err != nil {
				t.Fatal(err)
			}
		}, stickyCourse, experiments.Decision{Reason: experiments.ReasonFlagOff}},
		{"ok, a course override ForceOn on top of an org ForceOff keeps the remembered bucket", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Percent: 50})
			if err := r.store.SetOrgOverride(context.Background(), stickyName, "edX", experiments.ForceOff); err != nil {
				t.Fatal(err)
			}
			if err := r.store.SetCourseOverride(context.Background(), stickyName, stickyCourse, experiments.ForceOn); err != nil {
				t.Fatal(err)
			}
		}, stickyCourse, experiments.Decision{Bucket: 1, Reason: experiments.ReasonSticky}},
		{"ok, an org override ForceOff elsewhere leaves the remembered bucket", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Percent: 50})
			if err := r.store.SetOrgOverride(context.Background(), stickyName, "MITx", experiments.ForceOff); err != nil {
				t.Fatal(err)
			}
		}, stickyCourse, experiments.Decision{Bucket: 1, Reason: experiments.ReasonSticky}},
		{"ok, a percent with other clauses that leave the user out keeps the remembered bucket", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Percent: 50, Users: []string{"someone-else"}})
		}, "", experiments.Decision{Bucket: 1, Reason: experiments.ReasonSticky}},
		{"ok, a bucket flag on wins over the remembered bucket", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyTwo.BucketFlag(0), experiments.On())
		}, stickyCourse, experiments.Decision{Bucket: 0, Reason: experiments.ReasonForced}},
		{"ok, a bucket flag on wins for a user kept outside the percent", func(t *testing.T, r *stickyRig) {
			r.set(t, stickyName, experiments.Rule{Percent: 50})
			r.set(t, stickyTwo.BucketFlag(0), experiments.On())
		}, stickyCourse, experiments.Decision{Bucket: 0, Reason: experiments.ReasonForced}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newStickyRig(t, experiments.Rule{Percent: 100})
			r.decide(stickyTwo, u, c.course)
			if b, ok := r.remembered(t, stickyTwo, u, c.course); !ok || b != 1 {
				t.Fatalf("remembered %d, %v; want bucket 1", b, ok)
			}
			c.setup(t, r)
			if d := r.decide(stickyTwo, u, c.course); d != c.want {
				t.Errorf("decision %+v, want %+v", d, c.want)
			}
		})
	}

	t.Run("ok, Override and WithOverride beat the remembered bucket", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		r.decide(stickyTwo, u, "")
		ctx := stickyTwo.WithOverride(r.x.NewContext(context.Background(), u), true, 0)
		if d := stickyTwo.Decide(ctx, ""); d.Bucket != 0 || d.Reason != experiments.ReasonOverride {
			t.Errorf("WithOverride: decision %+v, want bucket 0 (override)", d)
		}
		restore := stickyTwo.Override(false, 1)
		defer restore()
		if d := r.decide(stickyTwo, u, ""); d.Bucket != 0 || d.Reason != experiments.ReasonOverride {
			t.Errorf("Override: decision %+v, want bucket 0 (override)", d)
		}
	})
	t.Run("nok, the enrollment window applies to remembered buckets", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		r.decide(stickyWin, u, stickyCourse)
		if err := r.store.SetExperimentValue(context.Background(), 31, experiments.EnrollmentStart, "2999-01-01"); err != nil {
			t.Fatal(err)
		}
		if d := r.decide(stickyWin, u, stickyCourse); d != (experiments.Decision{Reason: experiments.ReasonOutsideWindow}) {
			t.Errorf("decision %+v, want control (outside_window)", d)
		}
	})
	t.Run("ok, a flag that is not course-aware remembers one bucket for every course", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		want := stickyHash(u, "", 2)
		wantSticky(t, "first course", r.decide(stickyUnaware, u, stickyCourse), want, experiments.ReasonHashed)
		wantSticky(t, "other course", r.decide(stickyUnaware, u, "course-v1:MITx+Other+2026"), want, experiments.ReasonSticky)
		if got := stickyUnaware.AssignmentKey(stickyCourse); got != stickyName {
			t.Errorf("AssignmentKey = %q, want %q", got, stickyName)
		}
		if got := stickyTwo.AssignmentKey(stickyCourse); got != stickyName+"."+stickyCourse {
			t.Errorf("AssignmentKey = %q, want %q", got, stickyName+"."+stickyCourse)
		}
	})
}

func TestStickyBucketsTolerateFailures(t *testing.T) {
	errDown := errors.New("assignments down")
	u := stickyUser(t, func(u experiments.User) bool { return stickyHash(u, "", 3) != stickyHash(u, "", 2) })
	cases := []struct {
		name                 string
		readErr, saveErr     error
		readPanic, savePanic bool
		wantSaves            int
		remembered           bool
	}{
		{"ok, a failed read buckets by hash, logged once, and saves nothing", errDown, nil, false, false, 0, false},
		{"ok, a panicking read buckets by hash, logged once, and saves nothing", nil, nil, true, false, 0, false},
		{"ok, a failed save keeps the hashed bucket, logged once", nil, errDown, false, false, 1, false},
		{"ok, a panicking save keeps the hashed bucket, logged once", nil, nil, false, true, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newStickyRig(t, experiments.On())
			r.asg.fail(c.readErr, c.saveErr, c.readPanic, c.savePanic)
			ctx := r.x.NewContext(context.Background(), u)
			d := stickyThree.Decide(ctx, "")
			if d.Bucket != stickyHash(u, "", 3) || d.Reason != experiments.ReasonHashed || !errors.Is(d.Err, experiments.ErrAssignments) {
				t.Errorf("decision %+v, want the hashed bucket %d with ErrAssignments", d, stickyHash(u, "", 3))
			}
			if c.readErr != nil || c.saveErr != nil {
				if !errors.Is(d.Err, errDown) {
					t.Errorf("Err %v does not wrap the Assignments' error", d.Err)
				}
			} else if !strings.Contains(d.Err.Error(), "exploded") {
				t.Errorf("Err %v does not tell the panic", d.Err)
			}
			if d := stickyThree.Decide(ctx, ""); d.Bucket != stickyHash(u, "", 3) || d.Reason != experiments.ReasonCached {
				t.Errorf("second decision %+v, want the cached bucket", d)
			}
			if reads, saves := r.asg.counts(); reads != 1 || saves != c.wantSaves {
				t.Errorf("%d reads, %d saves; want 1, %d", reads, saves, c.wantSaves)
			}
			if n := r.logs.errors(); n != 1 {
				t.Errorf("%d errors logged, want 1:\n%s", n, r.logs)
			}
			if _, ok := r.remembered(t, stickyThree, u, ""); ok != c.remembered {
				t.Errorf("remembered %v, want %v", ok, c.remembered)
			}
		})
	}

	t.Run("ok, a failed read after a change of buckets gives the new hash and keeps the remembered bucket", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		r.decide(stickyTwo, u, "")
		r.asg.fail(errDown, nil, false, false)
		if d := r.decide(stickyThree, u, ""); d.Bucket != stickyHash(u, "", 3) || !errors.Is(d.Err, experiments.ErrAssignments) {
			t.Errorf("decision %+v, want the new hash %d with ErrAssignments", d, stickyHash(u, "", 3))
		}
		r.asg.fail(nil, nil, false, false)
		wantSticky(t, "read back", r.decide(stickyThree, u, ""), stickyHash(u, "", 2), experiments.ReasonSticky)
	})
	t.Run("nok, a failed read for a user the percent leaves out gives control, logged once", func(t *testing.T) {
		v := stickyUser(t, func(u experiments.User) bool { return !inPercent(u, 50) })
		r := newStickyRig(t, experiments.Rule{Percent: 50})
		r.asg.fail(errDown, nil, false, false)
		d := r.decide(stickyTwo, v, "")
		if d.Bucket != 0 || d.Reason != experiments.ReasonFlagOff || !errors.Is(d.Err, experiments.ErrAssignments) {
			t.Errorf("decision %+v, want control (flag_off) with ErrAssignments", d)
		}
		if n := r.logs.errors(); n != 1 {
			t.Errorf("%d errors logged, want 1", n)
		}
	})
	t.Run("ok, the next request saves once the Assignments is back", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		r.asg.fail(nil, errDown, false, false)
		r.decide(stickyTwo, u, "")
		r.asg.fail(nil, nil, false, false)
		wantSticky(t, "back", r.decide(stickyTwo, u, ""), stickyHash(u, "", 2), experiments.ReasonHashed)
		wantSticky(t, "remembered", r.decide(stickyTwo, u, ""), stickyHash(u, "", 2), experiments.ReasonSticky)
	})
}

// tooMany is an Assignments that remembers bucket 5 for everyone, and a
// negative bucket for "neg".
type tooMany struct{}

func (tooMany) Assignment(_ context.Context, userID, _ string) (int, bool, error) {
	if userID == "neg" {
		return -1, true, nil
	}
	return 5, true, nil
}
func (tooMany) SaveAssignment(context.Context, string, string, int) error { return nil }

func TestStickyBucketsOutOfRange(t *testing.T) {
	s := experiments.NewMemStore()
	unitSetFlag(t, s, stickyName, experiments.On())
	x := experiments.New(experiments.Config{Store: s, Assignments: tooMany{}, Logger: unitLogger()})
	u := experiments.User{ID: "u1"}
	if d := stickyThree.Decide(x.NewContext(context.Background(), u), ""); d.Reason != experiments.ReasonHashed || d.Err != nil {
		t.Errorf("remembered bucket 5 of 3: decision %+v, want hashed", d)
	}
	d := stickyThree.Decide(x.NewContext(context.Background(), experiments.User{ID: "neg"}), "")
	if d.Reason != experiments.ReasonHashed || !errors.Is(d.Err, experiments.ErrAssignments) {
		t.Errorf("remembered bucket -1: decision %+v, want hashed with ErrAssignments", d)
	}
}

func TestStickyBucketsRequestCacheAndCosts(t *testing.T) {
	u := stickyUsers(1)[0]
	t.Run("ok, a second call in the request reads nothing", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		ctx := r.x.NewContext(context.Background(), u)
		first := stickyTwo.Bucket(ctx, stickyCourse)
		for range 3 {
			if b := stickyTwo.Bucket(ctx, stickyCourse); b != first {
				t.Fatalf("bucket %d, want %d", b, first)
			}
		}
		if reads, saves := r.asg.counts(); reads != 1 || saves != 1 {
			t.Errorf("%d reads, %d saves; want 1, 1", reads, saves)
		}
	})
	t.Run("ok, a flag without WithStickyBuckets never touches the Assignments", func(t *testing.T) {
		r := newStickyRig(t, experiments.Rule{Percent: 50})
		for _, v := range stickyUsers(50) {
			r.decide(plainThree, v, stickyCourse)
		}
		if reads, saves := r.asg.counts(); reads != 0 || saves != 0 {
			t.Errorf("%d reads, %d saves; want none", reads, saves)
		}
	})
	t.Run("ok, a main flag off for everyone reads nothing", func(t *testing.T) {
		r := newStickyRig(t, experiments.Off())
		r.decide(stickyTwo, u, stickyCourse)
		if reads, _ := r.asg.counts(); reads != 0 {
			t.Errorf("%d reads, want none", reads)
		}
	})
	t.Run("ok, a cached sticky decision allocates nothing", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		ctx := r.x.NewContext(context.Background(), u)
		stickyTwo.Bucket(ctx, stickyCourse)
		if n := testing.AllocsPerRun(100, func() { stickyTwo.Bucket(ctx, stickyCourse) }); n != 0 {
			t.Errorf("allocs = %v, want 0", n)
		}
	})
}

func TestStickyBucketsMasqueradingAndUntracked(t *testing.T) {
	u := stickyUsers(1)[0]
	t.Run("ok, a masquerading user's remembered bucket is read but nothing is saved", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		m := u
		m.Masquerading = true
		wantSticky(t, "masquerading, nothing remembered", r.decide(stickyTwo, m, ""), stickyHash(u, "", 2), experiments.ReasonHashed)
		if _, saves := r.asg.counts(); saves != 0 {
			t.Errorf("%d saves while masquerading, want none", saves)
		}
		r.decide(stickyTwo, u, "")
		wantSticky(t, "masquerading, remembered", r.decide(stickyThree, m, ""), stickyHash(u, "", 2), experiments.ReasonSticky)
	})
	t.Run("ok, DecideUntracked saves the bucket too", func(t *testing.T) {
		r := newStickyRig(t, experiments.On())
		stickyTwo.DecideUntracked(r.x.NewContext(context.Background(), u), "")
		if b, ok := r.remembered(t, stickyTwo, u, ""); !ok || b != stickyHash(u, "", 2) {
			t.Errorf("remembered %d, %v; want %d", b, ok, stickyHash(u, "", 2))
		}
	})
	t.Run("ok, a sticky decision sends the bucketing event", func(t *testing.T) {
		s := experiments.NewMemStore()
		unitSetFlag(t, s, stickyName, experiments.On())
		var events []experiments.Event
		x := experiments.New(experiments.Config{Store: s, Logger: unitLogger(),
			Tracker: experiments.TrackerFunc(func(_ context.Context, e experiments.Event) error {
				events = append(events, e)
				return nil
			})})
		stickyTwo.Decide(x.NewContext(context.Background(), u), "")
		d := stickyThree.Decide(x.NewContext(context.Background(), u), "")
		if d.Reason != experiments.ReasonSticky || !d.Tracked || len(events) != 2 || events[1].Bucket != d.Bucket {
			t.Errorf("decision %+v, events %+v; want a tracked sticky decision and its event", d, events)
		}
	})
}

func TestStickyBucketsConfig(t *testing.T) {
	u := stickyUsers(1)[0]
	t.Run("ok, Assignments defaults to the Store", func(t *testing.T) {
		s := experiments.NewMemStore()
		unitSetFlag(t, s, stickyName, experiments.On())
		x := experiments.New(experiments.Config{Store: s, Logger: unitLogger()})
		stickyTwo.Decide(x.NewContext(context.Background(), u), "")
		if b, ok, err := s.Assignment(context.Background(), u.ID, stickyName); err != nil || !ok || b != stickyHash(u, "", 2) {
			t.Errorf("Assignment = %d, %v, %v; want the hashed bucket", b, ok, err)
		}
	})
	t.Run("ok, without Assignments WithStickyBuckets has no effect", func(t *testing.T) {
		s := experiments.NewMemStore()
		unitSetFlag(t, s, stickyName, experiments.On())
		x := experiments.New(experiments.Config{Store: snapshotOnly{s}, Logger: unitLogger()})
		stickyTwo.Decide(x.NewContext(context.Background(), u), "")
		wantSticky(t, "3 buckets", stickyThree.Decide(x.NewContext(context.Background(), u), ""), stickyHash(u, "", 3), experiments.ReasonHashed)
		if _, ok, _ := s.Assignment(context.Background(), u.ID, stickyName); ok {
			t.Error("a bucket was remembered in a store that is not the Config's")
		}
	})
	t.Run("ok, the option and its accessor", func(t *testing.T) {
		if !stickyTwo.StickyBuckets() || plainTwo.StickyBuckets() {
			t.Error("StickyBuckets() does not report WithStickyBuckets")
		}
		if f := experiments.NewFlagSet().NewFlag("sticky_test", "off", experiments.WithStickyBuckets(true), experiments.WithStickyBuckets(false)); f.StickyBuckets() {
			t.Error("WithStickyBuckets(false) after true: still sticky")
		}
	})
}

func TestStickyBucketsConcurrently(t *testing.T) {
	r := newStickyRig(t, experiments.Rule{Percent: 100})
	users := stickyUsers(64)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i, u := range users {
				f := stickyTwo
				if (i+w)%2 == 1 {
					f = stickyThree
				}
				ctx := r.x.NewContext(context.Background(), u)
				if d := f.Decide(ctx, stickyCourse); d.Err != nil || d.Bucket < 0 || d.Bucket >= f.Buckets() {
					t.Errorf("decision %+v", d)
				}
			}
		})
	}
	wg.Go(func() {
		for p := range 20 {
			if err := r.store.SetFlag(context.Background(), stickyName, experiments.Rule{Percent: float64(100 - p)}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	// Whatever the interleaving, every user that every percent written
	// took in now has one remembered bucket, that both flags give.
	r.set(t, stickyName, experiments.Rule{Percent: 100})
	for _, u := range users {
		b, ok := r.remembered(t, stickyTwo, u, stickyCourse)
		if !ok {
			if inPercent(u, 81) {
				t.Errorf("user %s: nothing remembered", u.ID)
			}
			continue
		}
		if b >= 2 {
			// Remembered from three buckets: two buckets re-hash.
			continue
		}
		for _, f := range []*experiments.ExperimentFlag{stickyTwo, stickyThree} {
			if d := r.decide(f, u, stickyCourse); d.Bucket != b || d.Reason != experiments.ReasonSticky {
				t.Errorf("user %s: %s decision %+v, want remembered bucket %d", u.ID, f.Name(), d, b)
			}
		}
	}
}

// BenchmarkBucketFirstSticky is BenchmarkBucketFirst for a sticky flag on
// a MemStore that remembers every user's bucket: the read replaces the
// hash.
func BenchmarkBucketFirstSticky(b *testing.B) {
	sticky := experiments.NewFlagSet().NewFlag("bench", "upgrade", experiments.WithStickyBuckets(true))
	x, users := benchRuntime(b, experiments.Config{})
	bg := context.Background()
	for _, u := range users {
		sticky.Bucket(x.NewContext(bg, u), benchCourse)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ctx := x.NewContext(bg, users[i%len(users)])
		if d := sticky.Decide(ctx, benchCourse); d.Reason != experiments.ReasonSticky {
			b.Fatalf("decision %+v, want sticky", d)
		}
		i++
	}
}

// Raising a sticky flag's buckets from 2 to 3 moves nobody already
// bucketed; a flag that is not sticky moves about a third of them.
func ExampleWithStickyBuckets() {
	ctx := context.Background()
	store := experiments.NewMemStore() // also the default Config.Assignments
	_ = store.SetFlag(ctx, "course_experience.upgrade_button", experiments.On())
	x := experiments.New(experiments.Config{Store: store})
	user := experiments.User{ID: "2"}

	// Each deploy is a process of its own, with the flag declared once:
	// here, a FlagSet each. The first deploy: two buckets.
	v1 := experiments.NewFlagSet().NewFlag("course_experience", "upgrade_button", experiments.WithStickyBuckets(true))
	d := v1.Decide(x.NewContext(ctx, user), "")
	fmt.Println("2 buckets:", d.Bucket, d.Reason)

	// The next deploy adds a variant.
	v2 := experiments.NewFlagSet().NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3), experiments.WithStickyBuckets(true))
	d = v2.Decide(x.NewContext(ctx, user), "")
	fmt.Println("3 buckets:", d.Bucket, d.Reason)

	plain := experiments.NewFlagSet().NewFlag("course_experience", "upgrade_button", experiments.WithBuckets(3))
	d = plain.Decide(x.NewContext(ctx, user), "")
	fmt.Println("3 buckets, not sticky:", d.Bucket, d.Reason)
	// Output:
	// 2 buckets: 1 hashed
	// 3 buckets: 1 sticky
	// 3 buckets, not sticky: 2 hashed
}
