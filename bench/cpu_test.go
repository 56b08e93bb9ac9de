package bench

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time this process has used, user and system. Benchmarks report the
// CPU time of their work per operation (cpu-µs/op) beside their rate: on a machine shared
// with other work the rate follows the load, the CPU time much less, so two builds measured
// in turns compare on it even when the machine is busy.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerOp returns the CPU time since start per operation, in microseconds.
func cpuPerOp(start time.Duration, n int) float64 {
	return float64(cpuTime()-start) / float64(time.Microsecond) / float64(n)
}
