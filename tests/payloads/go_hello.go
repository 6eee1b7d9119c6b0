// Go static payload: hello, then 100 goroutines over a channel (`go_hello.km goroutines`).
package main

import (
	"fmt"
	"os"
	"sort"
	"sync"
)

func goroutines() {
	results := make(chan int)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			sum := 0
			for k := 0; k <= n*1000; k++ {
				sum += k
			}
			results <- sum % 9973
		}(i)
	}
	go func() { wg.Wait(); close(results) }()
	var all []int
	for r := range results {
		all = append(all, r)
	}
	sort.Ints(all)
	total := 0
	for _, r := range all {
		total += r
	}
	fmt.Printf("goroutines %d total %d\n", len(all), total)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "goroutines" {
		goroutines()
		return
	}
	fmt.Println("hello from go", len(os.Args))
}
