// Go async preemption: with GOMAXPROCS=1 a goroutine spinning without calls is preempted only by SIGURG
// (tgkill from sysmon); main must still wake from time.Sleep and finish.
package main

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

var spins uint64

func spin() {
	for {
		atomic.AddUint64(&spins, 1)
	}
}

func main() {
	runtime.GOMAXPROCS(1)
	for i := 0; i < 2; i++ {
		go spin()
	}
	for round := 0; round < 3; round++ {
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("main not starved, spinner ran:", atomic.LoadUint64(&spins) > 0)
}
