// gdb stub tests: a Go payload (many threads, SIGURG preemption signals gdb must pass without stopping).
package main

import (
	"fmt"
	"os"
	"sync"
)

//go:noinline
func square(n int) int {
	return n * n // @go_square
}

func main() {
	var wg sync.WaitGroup
	results := make([]int, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sum := 0
			for j := 0; j < 2000000; j++ {
				sum += j % (i + 2)
			}
			results[i] = sum + square(i)
		}(i)
	}
	wg.Wait()
	fmt.Println("go results", len(results))
	os.Exit(5)
}
