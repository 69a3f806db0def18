package harness

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Kstatus is what Flux (and kpt, and other waiters built on cli-utils) make
// of an object without any custom health expression: kstatus's generic rules
// (deletionTimestamp, observedGeneration, the Reconciling and Stalled
// conditions, then the Ready condition).
func Kstatus(obj *unstructured.Unstructured) (status.Status, string, error) {
	result, err := status.Compute(obj)
	if err != nil {
		return "", "", err
	}
	return result.Status, result.Message, nil
}

// CheckKstatus computes the kstatus of every fixture under
// root/<group>/<Kind>/testdata and compares it with expected, keyed by
// "<Kind>/testdata/<file>". A fixture without an expectation and an
// expectation without a fixture are mismatches too.
func CheckKstatus(root string, expected map[string]status.Status) (int, []string, error) {
	fixtures, err := filepath.Glob(filepath.Join(root, "*", "*", "testdata", "*.yaml"))
	if err != nil {
		return 0, nil, err
	}
	if len(fixtures) == 0 {
		return 0, nil, fmt.Errorf("no fixtures under %s/<group>/<Kind>/testdata", root)
	}
	var mismatches []string
	seen := map[string]bool{}
	for _, path := range fixtures {
		parts := strings.Split(filepath.ToSlash(path), "/")
		name := strings.Join(parts[len(parts)-3:], "/")
		seen[name] = true
		want, ok := expected[name]
		if !ok {
			mismatches = append(mismatches, fmt.Sprintf("%s: no expected kstatus; add one", name))
			continue
		}
		obj, err := ReadObject(path)
		if err != nil {
			mismatches = append(mismatches, err.Error())
			continue
		}
		got, message, err := Kstatus(obj)
		if err != nil {
			mismatches = append(mismatches, fmt.Sprintf("%s: %v", name, err))
		} else if got != want {
			mismatches = append(mismatches, fmt.Sprintf("%s: kstatus says %s (%q), expected %s", name, got, message, want))
		}
	}
	var missing []string
	for name := range expected {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		mismatches = append(mismatches, fmt.Sprintf("%s: expected a kstatus for a fixture that does not exist", name))
	}
	return len(fixtures), mismatches, nil
}
