// Go runtime under load: goroutines allocating (GC runs, stopping the world with signals), blocking on pipes
// through the netpoller, sleeping on timers, and a mutex-protected counter, across GOMAXPROCS=4.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

func main() {
	runtime.GOMAXPROCS(4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	counter := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			var keep [][]byte
			for k := 0; k < 2000; k++ {
				keep = append(keep, make([]byte, 1024))
				if len(keep) > 64 {
					keep = keep[1:]
				}
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}(i)
	}
	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	got := make(chan string)
	go func() {
		buf := make([]byte, 64)
		n, _ := r.Read(buf) // parks in the netpoller until the writer below
		got <- string(buf[:n])
	}()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); time.Sleep(30 * time.Millisecond) }()
	}
	time.Sleep(20 * time.Millisecond)
	w.Write([]byte("through the pipe"))
	msg := <-got
	runtime.GC()
	wg.Wait()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	fmt.Printf("counter %d, pipe %q, GC ran %v\n", counter, msg, stats.NumGC > 0)
}
