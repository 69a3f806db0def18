package harness

import (
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// now is the clock os.time and os.date read; tests replace it.
var now = time.Now

// Argo CD gives its scripts a restricted os library: os.time and os.date, and
// nothing that reads or writes the machine. This is the same surface, written
// for this harness: os.time() is the Unix time in seconds, and os.date(format)
// formats the current time (in UTC after a leading "!") with the strftime
// conversions listed in dateConversions. A conversion it does not know is an
// error, so a script that needs more fails here rather than in Argo CD.
var restrictedOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int {
		l.Push(lua.LNumber(now().Unix()))
		return 1
	},
	"date": func(l *lua.LState) int {
		text, err := formatDate(l.OptString(1, "%c"), now())
		if err != nil {
			l.RaiseError("os.date: %v", err)
		}
		l.Push(lua.LString(text))
		return 1
	},
}

func openRestrictedOs(l *lua.LState) int {
	module := l.RegisterModule(lua.OsLibName, restrictedOs)
	l.Push(module)
	return 1
}

func loadRestrictedOs(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), restrictedOs))
	return 1
}

// dateConversions are the strftime conversions formatDate knows.
var dateConversions = map[byte]string{
	'Y': "2006", 'm': "01", 'd': "02", 'H': "15", 'M': "04", 'S': "05",
	'X': "15:04:05", 'T': "15:04:05", 'F': "2006-01-02", 'c': "Mon Jan  2 15:04:05 2006",
}

func formatDate(format string, at time.Time) (string, error) {
	if rest, ok := strings.CutPrefix(format, "!"); ok {
		format, at = rest, at.UTC()
	} else {
		at = at.Local()
	}
	var out strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			out.WriteByte(format[i])
			continue
		}
		i++
		if i == len(format) {
			return "", fmt.Errorf("format %q ends with %%", format)
		}
		if format[i] == '%' {
			out.WriteByte('%')
			continue
		}
		layout, ok := dateConversions[format[i]]
		if !ok {
			return "", fmt.Errorf("conversion %%%c is not supported by this harness", format[i])
		}
		out.WriteString(at.Format(layout))
	}
	return out.String(), nil
}
