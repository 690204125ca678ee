package ofprovider

import (
	"errors"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/abkit/experiments"
)

// TestResolutionMapsEveryReason checks each row of Provider's table,
// including those an evaluation through the provider cannot reach
// (ReasonNoRequest: the provider always has request state).
func TestResolutionMapsEveryReason(t *testing.T) {
	errStore := errors.New("store down")
	tests := []struct {
		d        experiments.Decision
		want     openfeature.Reason
		wantCode openfeature.ErrorCode
		wantMsg  string
	}{
		{experiments.Decision{Bucket: 2, Reason: experiments.ReasonHashed}, openfeature.SplitReason, "", ""},
		{experiments.Decision{Bucket: 1, Reason: experiments.ReasonSticky}, openfeature.SplitReason, "", ""},
		{experiments.Decision{Bucket: 1, Reason: experiments.ReasonForced}, openfeature.TargetingMatchReason, "", ""},
		{experiments.Decision{Bucket: 1, Reason: experiments.ReasonOverride}, openfeature.StaticReason, "", ""},
		{experiments.Decision{Reason: experiments.ReasonOverride}, openfeature.StaticReason, "", ""},
		{experiments.Decision{Bucket: 1, Reason: experiments.ReasonCached}, openfeature.CachedReason, "", ""},
		{experiments.Decision{Reason: experiments.ReasonFlagOff}, openfeature.DisabledReason, "", ""},
		{experiments.Decision{Reason: experiments.ReasonAnonymous}, openfeature.DefaultReason, "", ""},
		{experiments.Decision{Reason: experiments.ReasonNoRequest}, openfeature.DefaultReason, "", ""},
		{experiments.Decision{Reason: experiments.ReasonOutsideWindow}, openfeature.DefaultReason, "", ""},
		{experiments.Decision{Reason: experiments.ReasonBadWindow, Err: experiments.ErrBadWindow}, openfeature.ErrorReason, openfeature.GeneralCode, experiments.ErrBadWindow.Error()},
		{experiments.Decision{Reason: experiments.ReasonError, Err: errStore}, openfeature.ErrorReason, openfeature.GeneralCode, "store down"},
		{experiments.Decision{Reason: experiments.ReasonError}, openfeature.ErrorReason, openfeature.GeneralCode, "error"},
		{experiments.Decision{Bucket: 1, Reason: "from_the_future"}, openfeature.UnknownReason, "", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.d.Reason), func(t *testing.T) {
			got := resolution(tt.d).ResolutionDetail()
			if got.Reason != tt.want || got.ErrorCode != tt.wantCode || got.ErrorMessage != tt.wantMsg {
				t.Errorf("%+v: got %s %q %q, want %s %q %q", tt.d, got.Reason, got.ErrorCode, got.ErrorMessage, tt.want, tt.wantCode, tt.wantMsg)
			}
			if r, _ := got.FlagMetadata.GetString(MetadataReason); r != string(tt.d.Reason) {
				t.Errorf("metadata reason %q, want %q", r, tt.d.Reason)
			}
			if tt.wantCode != "" {
				if got.Variant != "" {
					t.Errorf("variant %q on an error, want none", got.Variant)
				}
				if tt.d.Err != nil && !errors.Is(resolution(tt.d).ResolutionError, tt.d.Err) {
					t.Errorf("the resolution error does not wrap %v", tt.d.Err)
				}
				return
			}
			if b, err := got.FlagMetadata.GetInt(MetadataBucket); err != nil || b != int64(tt.d.Bucket) || got.Variant != Variant(tt.d.Bucket) {
				t.Errorf("bucket %d (%v), variant %q; want %d", b, err, got.Variant, tt.d.Bucket)
			}
		})
	}
}
