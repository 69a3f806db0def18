package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// ReconcileRequestedAt is the annotation the reconcile actions set to the
// current time. Expected outputs hold ReconcileRequestedAtPlaceholder instead,
// as Argo CD's own action tests normalize the time-dependent annotations of
// the Flux kinds; TestReconcileActionsWriteTheCurrentTime checks the value.
const (
	ReconcileRequestedAt            = "imagepromoter.dev/reconcile-requested-at"
	ReconcileRequestedAtPlaceholder = "0001-01-01T00:00:00Z"
)

// Action is one entry of what discovery.lua returns.
type Action struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
}

// DiscoveryCase and ActionCase are the entries of an actions/action_test.yaml,
// in the format of Argo CD's resource_customizations.
type DiscoveryCase struct {
	InputPath string   `json:"inputPath"`
	Result    []Action `json:"result"`
}

type ActionCase struct {
	Action             string `json:"action"`
	InputPath          string `json:"inputPath"`
	ExpectedOutputPath string `json:"expectedOutputPath"`
}

// ActionSuite is one kind's actions folder with its cases.
type ActionSuite struct {
	// Dir is the kind's actions folder, e.g. resource_customizations/imagepromoter.dev/RegistryMirror/actions.
	Dir            string
	DiscoveryTests []DiscoveryCase
	ActionTests    []ActionCase
}

// ActionSuites finds every actions/discovery.lua under root and reads the
// action_test.yaml beside it; a discovery.lua without one, an action folder
// without tests and a test of an action without a folder are errors.
func ActionSuites(root string) ([]ActionSuite, error) {
	var suites []ActionSuite
	err := filepath.WalkDir(root, func(path string, entry os.DirEntry, err error) error {
		if err != nil || entry.IsDir() || entry.Name() != "discovery.lua" {
			return err
		}
		dir := filepath.Dir(path)
		text, err := os.ReadFile(filepath.Join(dir, "action_test.yaml"))
		if err != nil {
			return fmt.Errorf("%s has no action_test.yaml beside it: %w", path, err)
		}
		var tests struct {
			DiscoveryTests []DiscoveryCase `json:"discoveryTests"`
			ActionTests    []ActionCase    `json:"actionTests"`
		}
		if err := yaml.UnmarshalStrict(text, &tests); err != nil {
			return fmt.Errorf("%s/action_test.yaml: %w", dir, err)
		}
		if len(tests.DiscoveryTests) == 0 {
			return fmt.Errorf("%s/action_test.yaml lists no discoveryTests", dir)
		}
		tested := map[string]bool{}
		for _, c := range tests.ActionTests {
			tested[c.Action] = true
		}
		folders, err := filepath.Glob(filepath.Join(dir, "*", "action.lua"))
		if err != nil {
			return err
		}
		for _, folder := range folders {
			name := filepath.Base(filepath.Dir(folder))
			if !tested[name] {
				return fmt.Errorf("%s/action_test.yaml has no actionTests for %s", dir, name)
			}
		}
		suites = append(suites, ActionSuite{Dir: dir, DiscoveryTests: tests.DiscoveryTests, ActionTests: tests.ActionTests})
		return nil
	})
	if err == nil && len(suites) == 0 {
		err = fmt.Errorf("no actions/discovery.lua under %s", root)
	}
	sort.Slice(suites, func(i, j int) bool { return suites[i].Dir < suites[j].Dir })
	return suites, err
}

// CheckActions runs every discovery and action case of every suite under
// root and returns the number of cases run and those that failed, each as a
// sentence naming the case.
func CheckActions(root string) (int, []string, error) {
	suites, err := ActionSuites(root)
	if err != nil {
		return 0, nil, err
	}
	var failures []string
	run := 0
	for _, suite := range suites {
		discovery, err := os.ReadFile(filepath.Join(suite.Dir, "discovery.lua"))
		if err != nil {
			return run, failures, err
		}
		for _, c := range suite.DiscoveryTests {
			run++
			name := filepath.Join(suite.Dir, "discovery", c.InputPath)
			obj, err := ReadObject(filepath.Join(suite.Dir, c.InputPath))
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			got, err := Discover(string(discovery), obj)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			want := append([]Action(nil), c.Result...)
			sortActions(want)
			if !reflect.DeepEqual(got, want) {
				failures = append(failures, fmt.Sprintf("%s: discovery.lua offers %v, expected %v", name, got, want))
			}
		}
		for _, c := range suite.ActionTests {
			run++
			name := filepath.Join(suite.Dir, c.Action, c.InputPath)
			if failure := checkAction(suite.Dir, c); failure != "" {
				failures = append(failures, fmt.Sprintf("%s: %s", name, failure))
			}
		}
	}
	return run, failures, nil
}

func checkAction(dir string, c ActionCase) string {
	script, err := os.ReadFile(filepath.Join(dir, c.Action, "action.lua"))
	if err != nil {
		return fmt.Sprintf("no action %q: %v", c.Action, err)
	}
	input, err := ReadObject(filepath.Join(dir, c.InputPath))
	if err != nil {
		return err.Error()
	}
	expected, err := ReadObject(filepath.Join(dir, c.ExpectedOutputPath))
	if err != nil {
		return err.Error()
	}
	result, err := RunAction(string(script), input)
	if err != nil {
		return err.Error()
	}
	got, want := comparable(result), comparable(expected)
	if !reflect.DeepEqual(got, want) {
		gotText, _ := yaml.Marshal(got)
		wantText, _ := yaml.Marshal(want)
		return fmt.Sprintf("action.lua returned\n%s\nexpected (%s)\n%s", gotText, c.ExpectedOutputPath, wantText)
	}
	return ""
}

// Discover runs a discovery.lua on obj as Argo CD does and returns the actions
// it offers, sorted by name. An entry that is not a table, or whose disabled
// is not a boolean, is an error (Argo CD would offer it enabled).
func Discover(script string, obj *unstructured.Unstructured) ([]Action, error) {
	l, err := run(script, obj)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("discovery.lua returned %s, not a table", l.Get(-1).Type())
	}
	var actions []Action
	var problem error
	table.ForEach(func(key, value lua.LValue) {
		entry, ok := value.(*lua.LTable)
		if !ok {
			problem = fmt.Errorf("discovery.lua: action %s is %s, not a table", key, value.Type())
			return
		}
		action := Action{Name: key.String()}
		switch disabled := entry.RawGetString("disabled").(type) {
		case lua.LBool:
			action.Disabled = bool(disabled)
		case *lua.LNilType:
		default:
			problem = fmt.Errorf("discovery.lua: action %s has disabled = %s, not a boolean", key, disabled.Type())
		}
		actions = append(actions, action)
	})
	sortActions(actions)
	return actions, problem
}

func sortActions(actions []Action) {
	sort.Slice(actions, func(i, j int) bool { return actions[i].Name < actions[j].Name })
}

// RunAction runs an action.lua on obj as Argo CD does and returns the object
// it returns, which Argo CD then patches into the cluster. Lua has one kind of
// table for maps and lists; as in Argo CD, an empty table stands for whatever
// the input held at that place, and a map where the input had none.
func RunAction(script string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	l, err := run(script, obj)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("action.lua returned %s, not a table", l.Get(-1).Type())
	}
	result, ok := fromLua(table, obj.Object).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("action.lua returned a list, not an object")
	}
	return &unstructured.Unstructured{Object: result}, nil
}

// fromLua converts a Lua value back to JSON-like Go values; like tells an
// empty table's kind from what the input held at the same place.
func fromLua(value lua.LValue, like any) any {
	switch v := value.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return float64(v)
	case *lua.LTable:
		if n := v.MaxN(); n > 0 || isList(like) {
			likeList, _ := like.([]any)
			list := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				var item any
				if i <= len(likeList) {
					item = likeList[i-1]
				}
				list = append(list, fromLua(v.RawGetInt(i), item))
			}
			return list
		}
		likeMap, _ := like.(map[string]any)
		object := map[string]any{}
		v.ForEach(func(key, item lua.LValue) {
			object[key.String()] = fromLua(item, likeMap[key.String()])
		})
		return object
	}
	return nil
}

func isList(value any) bool {
	_, ok := value.([]any)
	return ok
}

// comparable makes an object comparable with reflect.DeepEqual whatever the
// origin of its numbers (int64 from YAML, float64 from Lua), with the
// reconcile annotation set to its placeholder when present.
func comparable(obj *unstructured.Unstructured) any {
	if annotations := obj.GetAnnotations(); annotations[ReconcileRequestedAt] != "" {
		annotations[ReconcileRequestedAt] = ReconcileRequestedAtPlaceholder
		obj.SetAnnotations(annotations)
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return err.Error()
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		return err.Error()
	}
	return out
}
