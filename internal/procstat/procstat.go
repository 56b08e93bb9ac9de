// Package procstat reads what the benchmarks measure of a process from Linux's /proc.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory returns the resident set size of process pid and its peak (VmRSS and VmHWM of
// /proc/<pid>/status), in MB.
func Memory(pid int) (rss, peak float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	fields := map[string]*float64{"VmRSS:": &rss, "VmHWM:": &peak}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) == 3 && fields[f[0]] != nil && f[2] == "kB" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%d/status: %q: %w", pid, line, err)
			}
			*fields[f[0]] = kb / 1024
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS or VmHWM", pid)
	}
	return rss, peak, nil
}
