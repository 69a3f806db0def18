package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// customizations is the folder laid out as Argo CD's resource_customizations.
const customizations = "../resource_customizations"

// TestArgoHealthChecks runs every health_test.yaml case, as Argo CD's own test does.
func TestArgoHealthChecks(t *testing.T) {
	run, mismatches, err := Check(customizations)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mismatches {
		t.Error(m)
	}
	// Both kinds, every case: a suite that went missing must not pass quietly.
	if run < 16 {
		t.Errorf("ran %d cases, expected at least 16 (7 ImagePromotion, 9 RegistryMirror)", run)
	}
	t.Logf("%d health_test.yaml cases checked", run)
}

// kstatusOf is what kstatus (Flux's health checks) must say of each fixture,
// as docs/argocd.md documents.
var kstatusOf = map[string]status.Status{
	"ImagePromotion/testdata/promoted.yaml":              status.CurrentStatus,
	"ImagePromotion/testdata/vulnerabilities-found.yaml": status.FailedStatus,
	"ImagePromotion/testdata/source-not-found.yaml":      status.FailedStatus,
	"ImagePromotion/testdata/tag-conflict.yaml":          status.FailedStatus,
	"ImagePromotion/testdata/scan-pending.yaml":          status.InProgressStatus,
	"ImagePromotion/testdata/generation-ahead.yaml":      status.InProgressStatus,
	// kstatus counts an object without status as Current (docs/argocd.md, Flux).
	"ImagePromotion/testdata/no-status.yaml":   status.CurrentStatus,
	"RegistryMirror/testdata/in-sync.yaml":     status.CurrentStatus,
	"RegistryMirror/testdata/backfilling.yaml": status.InProgressStatus,
	// Ready=False and neither Reconciling nor Stalled: kstatus falls back to Ready
	// (InProgress; Flux waits until its timeout), where Argo CD says Degraded.
	"RegistryMirror/testdata/tags-drifted.yaml":      status.InProgressStatus,
	"RegistryMirror/testdata/tags-failed.yaml":       status.InProgressStatus,
	"RegistryMirror/testdata/source-not-found.yaml":  status.FailedStatus,
	"RegistryMirror/testdata/suspended.yaml":         status.CurrentStatus,
	"RegistryMirror/testdata/suspended-in-sync.yaml": status.CurrentStatus,
	"RegistryMirror/testdata/generation-ahead.yaml":  status.InProgressStatus,
	"RegistryMirror/testdata/no-status.yaml":         status.CurrentStatus,
}

func TestKstatus(t *testing.T) {
	run, mismatches, err := CheckKstatus(customizations, kstatusOf)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mismatches {
		t.Error(m)
	}
	t.Logf("%d fixtures evaluated with kstatus", run)
}

func TestKstatusCheckFailsOnWrongTable(t *testing.T) {
	wrong := map[string]status.Status{}
	for name, s := range kstatusOf {
		wrong[name] = s
	}
	wrong["ImagePromotion/testdata/vulnerabilities-found.yaml"] = status.CurrentStatus
	delete(wrong, "ImagePromotion/testdata/promoted.yaml")
	wrong["ImagePromotion/testdata/absent.yaml"] = status.CurrentStatus
	_, mismatches, err := CheckKstatus(customizations, wrong)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(mismatches, "\n")
	for _, expect := range []string{
		"vulnerabilities-found.yaml: kstatus says Failed",
		"promoted.yaml: no expected kstatus",
		"absent.yaml: expected a kstatus for a fixture that does not exist",
	} {
		if !strings.Contains(text, expect) {
			t.Errorf("no mismatch mentions %q; mismatches:\n%s", expect, text)
		}
	}
	if len(mismatches) != 3 {
		t.Errorf("expected 3 mismatches, got %d:\n%s", len(mismatches), text)
	}
}

// The harness itself: a broken script or a wrong expectation must fail.

// copyTree copies the customizations to a temporary folder and applies edit
// to the file at rel (relative to imagepromoter.dev).
func copyTree(t *testing.T, rel string, edit func(string) string) string {
	t.Helper()
	dest := t.TempDir()
	err := filepath.WalkDir(customizations, func(path string, entry os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dest, strings.TrimPrefix(path, customizations))
		if entry.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dest, "imagepromoter.dev", rel)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := edit(string(data))
	if edited == string(data) {
		t.Fatalf("the edit of %s changed nothing", rel)
	}
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	return dest
}

func TestHarnessFailsOnBrokenScripts(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, expect string
	}{
		{"Stalled not checked", "ImagePromotion/health.lua", `{ type = "Stalled", health = "Degraded" },`,
			``, "vulnerabilities-found.yaml: expected Degraded"},
		{"Ready before generation", "ImagePromotion/health.lua", `local generation = (obj.metadata or {}).generation`,
			`local generation = nil`, `generation-ahead.yaml: expected Progressing "Waiting for the operator to observe generation 2", health.lua says Healthy`},
		{"syntax error", "ImagePromotion/health.lua", "return hs\nend", "return hs\nend end", "vulnerabilities-found.yaml"},
		{"status Argo CD does not know", "ImagePromotion/health.lua", `health = "Healthy"`, `health = "Fine"`, `status "Fine"`},
		{"the string library, absent from argocd-cm scripts", "ImagePromotion/health.lua", `hs.message = text(c)`,
			`hs.message = string.lower(text(c))`, "promoted.yaml: <string>:"},
		{"suspended mirror not checked", "RegistryMirror/health.lua", `(obj.spec or {}).suspend == true`,
			`false`, "suspended.yaml: expected Suspended"},
		{"suspend checked after Ready", "RegistryMirror/health.lua", `if (obj.spec or {}).suspend == true then`,
			`if (obj.spec or {}).suspend == true and (obj.status or {}).conditions == nil then`, "suspended-in-sync.yaml: expected Suspended"},
		{"drifted tags left Progressing", "RegistryMirror/health.lua", `settled.reason == "TagsDrifted" or `,
			``, "tags-drifted.yaml: expected Degraded"},
		{"failed tags left Progressing", "RegistryMirror/health.lua", ` or settled.reason == "TagsFailed"`,
			``, "tags-failed.yaml: expected Degraded"},
		{"wrong expected message", "ImagePromotion/health_test.yaml", "message: 2/2 targets promoted", "message: 1/2 targets promoted", `expected Healthy "1/2 targets promoted"`},
		{"wrong expected status", "ImagePromotion/health_test.yaml", "status: Healthy", "status: Progressing", "promoted.yaml: expected Progressing"},
		{"missing fixture", "ImagePromotion/health_test.yaml", "testdata/promoted.yaml", "testdata/absent.yaml", "absent.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, tc.file, func(s string) string { return strings.Replace(s, tc.old, tc.new, 1) })
			_, mismatches, err := Check(root)
			if err != nil {
				if !strings.Contains(err.Error(), tc.expect) {
					t.Fatalf("error %q does not mention %q", err, tc.expect)
				}
				return
			}
			var found bool
			var all []string
			for _, m := range mismatches {
				all = append(all, m.String())
				found = found || strings.Contains(m.String(), tc.expect)
			}
			if !found {
				t.Fatalf("no mismatch mentions %q; mismatches: %v", tc.expect, all)
			}
		})
	}
}

func TestHarnessFailsWithoutTests(t *testing.T) {
	root := copyTree(t, "ImagePromotion/health_test.yaml", func(string) string { return "tests: []\n" })
	if _, _, err := Check(root); err == nil || !strings.Contains(err.Error(), "lists no tests") {
		t.Fatalf("expected an error for an empty health_test.yaml, got %v", err)
	}
	if _, _, err := Check(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no health.lua") {
		t.Fatalf("expected an error for a folder without health.lua, got %v", err)
	}
}

// Argo CD holds one self-contained script per kind (an argocd-cm key, an
// upstream folder), so the two scripts repeat each other. They must not
// drift apart: the mirror's is the promotion's plus its own rules (suspend,
// and drifted or failed tags).
func TestScriptsShareTheirRules(t *testing.T) {
	read := func(kind string) string {
		data, err := os.ReadFile(filepath.Join(customizations, "imagepromoter.dev", kind, "health.lua"))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(data), "\n") // the first line names the kind
		return rest
	}
	promotion, mirror := read("ImagePromotion"), read("RegistryMirror")
	for _, rule := range mirrorOnlyRules {
		if !strings.Contains(mirror, rule) {
			t.Fatalf("RegistryMirror/health.lua lacks its rule:\n%s", rule)
		}
		mirror = strings.Replace(mirror, rule, "", 1)
	}
	if mirror != promotion {
		t.Errorf("RegistryMirror/health.lua without its own rules differs from ImagePromotion/health.lua: change both")
	}
}

// mirrorOnlyRules are the blocks of RegistryMirror/health.lua that
// ImagePromotion/health.lua does not have.
var mirrorOnlyRules = []string{`-- Suspended first, as Argo CD's checks for Flux kinds do: it is a fact of the
-- spec, true whatever the last sync left behind.
if (obj.spec or {}).suspend == true then
  hs.status = "Suspended"
  hs.message = "Mirror is suspended (spec.suspend is true)"
  return hs
end

`, `-- Nothing left to copy (not Reconciling) and some tags drifted or failed:
-- waiting does not fix them, so Degraded, as Argo CD's checks for Flux kinds
-- treat a settled Ready=False.
local settled = condition(conditions, "Ready")
if settled ~= nil and settled.status == "False" and (settled.reason == "TagsDrifted" or settled.reason == "TagsFailed") then
  hs.status = "Degraded"
  hs.message = text(settled)
  return hs
end

`}
