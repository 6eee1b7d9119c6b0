// Go's CPU profiler: per-thread CPU-time timers (timer_create on Linux's encoded thread clocks) send SIGPROF
// while a goroutine spins; the profile must hold samples, about 100 per CPU second.
package main

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"time"
)

var sink int

func spin(d time.Duration) {
	for t0 := time.Now(); time.Since(t0) < d; {
		sink++
	}
}

func main() {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		fmt.Println("start:", err)
		return
	}
	spin(300 * time.Millisecond)
	pprof.StopCPUProfile()
	fmt.Println("profile written:", buf.Len() > 200)
}
