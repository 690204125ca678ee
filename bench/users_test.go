package bench_test

import "strconv"

// benchUsers are the IDs every benchmark cycles through: iteration i
// evaluates benchUsers[i%len(benchUsers)].
var benchUsers = userIDs(1024)

// userIDs returns "user-0" … "user-<n-1>".
func userIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
	}
	return ids
}
