package harness

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestArgoActions runs every actions/action_test.yaml case, as Argo CD's own
// TestLuaResourceActionsScript does: each discovery case's offered actions,
// and each action's returned object against its expected output.
func TestArgoActions(t *testing.T) {
	run, failures, err := CheckActions(customizations)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		t.Error(f)
	}
	// Both kinds, every case: a suite that went missing must not pass quietly.
	if run < 8 {
		t.Errorf("ran %d cases, expected at least 8 (3 ImagePromotion, 5 RegistryMirror)", run)
	}
	t.Logf("%d action_test.yaml cases checked", run)
}

// The expected outputs hold a placeholder for the time; this checks the time
// itself, read from a clock the test sets, in the format the operator reads.
func TestReconcileActionsWriteTheCurrentTime(t *testing.T) {
	at := time.Date(2026, 12, 7, 4, 5, 6, 0, time.FixedZone("CET", 3600))
	now = func() time.Time { return at }
	defer func() { now = time.Now }()
	for _, kind := range []string{"ImagePromotion", "RegistryMirror"} {
		dir := customizations + "/imagepromoter.dev/" + kind + "/actions"
		suites, err := ActionSuites(dir)
		if err != nil {
			t.Fatal(err)
		}
		c := ActionCase{Action: "reconcile", InputPath: suites[0].ActionTests[0].InputPath}
		script := readFile(t, dir+"/reconcile/action.lua")
		input, err := ReadObject(dir + "/" + c.InputPath)
		if err != nil {
			t.Fatal(err)
		}
		result, err := RunAction(script, input)
		if err != nil {
			t.Fatal(err)
		}
		value := result.GetAnnotations()[ReconcileRequestedAt]
		if value != "2026-12-07T03:05:06Z" {
			t.Errorf("%s reconcile set %s to %q, expected the clock's time in UTC, 2026-12-07T03:05:06Z", kind, ReconcileRequestedAt, value)
		}
		if parsed, err := time.Parse(time.RFC3339, value); err != nil || !parsed.Equal(at) {
			t.Errorf("%s reconcile: %q is not the clock's time as RFC 3339 (%v)", kind, value, err)
		}
	}
}

// The action harness itself: a broken script or a wrong expectation must fail.
func TestActionHarnessFailsOnBrokenScripts(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new, expect string
	}{
		{"suspend does nothing", "RegistryMirror/actions/suspend/action.lua", "obj.spec.suspend = true", "",
			"suspend/testdata/mirror.yaml: action.lua returned"},
		{"resume suspends", "RegistryMirror/actions/resume/action.lua", "obj.spec.suspend = false", "obj.spec.suspend = true",
			"resume/testdata/mirror-suspended.yaml: action.lua returned"},
		{"reconcile under another annotation", "ImagePromotion/actions/reconcile/action.lua",
			`obj.metadata.annotations["imagepromoter.dev/reconcile-requested-at"]`, `obj.metadata.annotations["reconcile.fluxcd.io/requestedAt"]`,
			"reconcile/testdata/promotion.yaml: action.lua returned"},
		{"reconcile drops other annotations", "ImagePromotion/actions/reconcile/action.lua",
			"if obj.metadata.annotations == nil then", "if true then",
			"reconcile/testdata/promotion-reconciled-before.yaml: action.lua returned"},
		{"the string library, absent from argocd-cm scripts", "ImagePromotion/actions/reconcile/action.lua",
			`os.date("!%Y-%m-%dT%H:%M:%SZ")`, `string.format("%s", os.date("!%Y-%m-%dT%H:%M:%SZ"))`, "promotion.yaml: <string>:"},
		{"a date conversion Argo CD may lack", "ImagePromotion/actions/reconcile/action.lua",
			`os.date("!%Y-%m-%dT%H:%M:%SZ")`, `os.date("!%Y-%m-%dT%H:%M:%S%z")`, "not supported"},
		{"suspended mirror offered reconcile", "RegistryMirror/actions/discovery.lua",
			`actions["reconcile"] = { ["disabled"] = suspended }`, `actions["reconcile"] = { ["disabled"] = false }`,
			"discovery/testdata/mirror-suspended.yaml: discovery.lua offers"},
		{"disabled not a boolean", "RegistryMirror/actions/discovery.lua",
			`actions["resume"] = { ["disabled"] = not suspended }`, `actions["resume"] = { ["disabled"] = "no" }`, "not a boolean"},
		{"wrong expected output", "RegistryMirror/actions/testdata/mirror-after-suspend.yaml", "suspend: true", "suspend: false",
			"suspend/testdata/mirror.yaml: action.lua returned"},
		{"action without tests", "RegistryMirror/actions/action_test.yaml", "- action: resume\n", "- action: suspend\n",
			"no actionTests for resume"},
		{"action that does not exist", "ImagePromotion/actions/action_test.yaml", "- action: reconcile\n  inputPath: testdata/promotion.yaml",
			"- action: restart\n  inputPath: testdata/promotion.yaml", `no action "restart"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, tc.file, func(s string) string { return strings.Replace(s, tc.old, tc.new, 1) })
			_, failures, err := CheckActions(root)
			if err != nil {
				if !strings.Contains(err.Error(), tc.expect) {
					t.Fatalf("error %q does not mention %q", err, tc.expect)
				}
				return
			}
			text := strings.Join(failures, "\n")
			if !strings.Contains(text, tc.expect) {
				t.Fatalf("no failure mentions %q; failures:\n%s", tc.expect, text)
			}
		})
	}
}

func TestFormatDate(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for format, want := range map[string]string{
		"!%Y-%m-%dT%H:%M:%SZ": "2026-01-02T03:04:05Z",
		"!%Y-%m-%dT%X":        "2026-01-02T03:04:05",
		"!%F %T 100%%":        "2026-01-02 03:04:05 100%",
	} {
		got, err := formatDate(format, at)
		if err != nil || got != want {
			t.Errorf("formatDate(%q) = %q, %v; want %q", format, got, err, want)
		}
	}
	for _, format := range []string{"%z", "%Y%"} {
		if _, err := formatDate(format, at); err == nil {
			t.Errorf("formatDate(%q) gave no error", format)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
