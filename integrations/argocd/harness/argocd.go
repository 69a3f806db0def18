// Package harness checks image-promoter's Argo CD health checks and its
// kstatus behaviour against the same fixtures.
//
// Argo CD runs a resource's health.lua in gopher-lua (Lua 5.1) with the
// object in the global `obj` and reads the table the script returns. This
// package does the same with the libraries an argocd-cm script gets without
// useOpenLibs (base, package, table and a restricted os with only os.time and
// os.date; see os.go), so a script that passes here also runs when users
// install it through argocd-cm. Argo CD's test walks resource_customizations
// for health.lua files and checks every case of the health_test.yaml next
// to each; Suites and Check do that here, so the folder can be offered
// upstream as it is. Resource actions (actions/discovery.lua,
// actions/<name>/action.lua) are checked the same way from each kind's
// actions/action_test.yaml (actions.go).
package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// HealthStatus is what a health check says about an object.
type HealthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// statuses are the health statuses Argo CD accepts from a script; any other
// value makes Argo CD report Unknown.
var statuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

// Case is one entry of a health_test.yaml.
type Case struct {
	HealthStatus HealthStatus `json:"healthStatus"`
	InputPath    string       `json:"inputPath"`
}

// Suite is one resource kind's health.lua with its cases.
type Suite struct {
	// Dir is the kind's folder, e.g. resource_customizations/imagepromoter.dev/ImagePromotion.
	Dir    string
	Script string
	Cases  []Case
}

// Suites finds every health.lua under root and reads the health_test.yaml
// beside it; a health.lua without one is an error.
func Suites(root string) ([]Suite, error) {
	var suites []Suite
	err := filepath.WalkDir(root, func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() || entry.Name() != "health.lua" {
			return err
		}
		dir := filepath.Dir(path)
		script, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return fmt.Errorf("%s has no health_test.yaml beside it: %w", path, err)
		}
		var tests struct {
			Tests []Case `json:"tests"`
		}
		if err := yaml.UnmarshalStrict(text, &tests); err != nil {
			return fmt.Errorf("%s/health_test.yaml: %w", dir, err)
		}
		if len(tests.Tests) == 0 {
			return fmt.Errorf("%s/health_test.yaml lists no tests", dir)
		}
		suites = append(suites, Suite{Dir: dir, Script: string(script), Cases: tests.Tests})
		return nil
	})
	if err == nil && len(suites) == 0 {
		err = fmt.Errorf("no health.lua under %s", root)
	}
	sort.Slice(suites, func(i, j int) bool { return suites[i].Dir < suites[j].Dir })
	return suites, err
}

// ReadObject reads a fixture as Kubernetes reads an object: whole numbers
// become int64, as they are in Argo CD's and kstatus's unstructured objects.
func ReadObject(path string) (*unstructured.Unstructured, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// Mismatch is one case whose health differs from what health_test.yaml says.
type Mismatch struct {
	Case     string
	Expected HealthStatus
	Actual   HealthStatus
	Err      error
}

func (m Mismatch) String() string {
	if m.Err != nil {
		return fmt.Sprintf("%s: %v", m.Case, m.Err)
	}
	return fmt.Sprintf("%s: expected %s %q, health.lua says %s %q",
		m.Case, m.Expected.Status, m.Expected.Message, m.Actual.Status, m.Actual.Message)
}

// Check runs every case of every suite under root and returns the number
// of cases run and those that did not give the expected health.
func Check(root string) (int, []Mismatch, error) {
	suites, err := Suites(root)
	if err != nil {
		return 0, nil, err
	}
	var mismatches []Mismatch
	run := 0
	for _, suite := range suites {
		for _, c := range suite.Cases {
			run++
			name := filepath.Join(suite.Dir, c.InputPath)
			obj, err := ReadObject(name)
			if err != nil {
				mismatches = append(mismatches, Mismatch{Case: name, Err: err})
				continue
			}
			actual, err := EvaluateHealth(suite.Script, obj)
			if err != nil || actual != c.HealthStatus {
				mismatches = append(mismatches, Mismatch{Case: name, Expected: c.HealthStatus, Actual: actual, Err: err})
			}
		}
	}
	return run, mismatches, nil
}

// EvaluateHealth runs a health script on obj the way Argo CD does.
func EvaluateHealth(script string, obj *unstructured.Unstructured) (HealthStatus, error) {
	l, err := run(script, obj)
	if err != nil {
		return HealthStatus{}, err
	}
	defer l.Close()
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return HealthStatus{}, fmt.Errorf("health.lua returned %s, not a table", l.Get(-1).Type())
	}
	health := HealthStatus{
		Status:  stringField(table, "status"),
		Message: stringField(table, "message"),
	}
	if !statuses[health.Status] {
		return health, fmt.Errorf("health.lua returned status %q, which Argo CD turns into Unknown", health.Status)
	}
	return health, nil
}

// run runs a script with obj in the global `obj`, in the Lua state Argo CD
// gives health checks and actions alike: the base, package and table
// libraries and a restricted os (os.time and os.date, also through
// require("os")), with a one-second deadline. The caller closes the state
// and finds what the script returned on top of its stack.
func run(script string, obj *unstructured.Unstructured) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
		lua.OsLibName:   openRestrictedOs,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			l.Close()
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, loadRestrictedOs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		l.Close()
		return nil, err
	}
	l.RemoveContext()
	return l, nil
}

func stringField(table *lua.LTable, key string) string {
	if value, ok := table.RawGetString(key).(lua.LString); ok {
		return string(value)
	}
	return ""
}

// toLua converts an unstructured value as Argo CD does: maps to tables,
// lists to sequences, numbers (int64 or float64) to Lua numbers.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		list := l.CreateTable(len(v), 0)
		for _, item := range v {
			list.Append(toLua(l, item))
		}
		return list
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	}
	return lua.LNil
}
