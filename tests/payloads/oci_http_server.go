// A Go net/http server for the container tests: listens on every address at the port in argv[1] (published by
// the engine), answers each request with its path and the request count, and exits after GET /quit.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
)

func main() {
	var count int64
	quit := make(chan struct{})
	srv := &http.Server{Addr: ":" + os.Args[1]}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := atomic.AddInt64(&count, 1)
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "hello from km in a container, %s #%d\n", r.URL.Path, n)
		if r.URL.Path == "/quit" {
			close(quit)
		}
	})
	go func() {
		<-quit
		srv.Shutdown(context.Background())
	}()
	fmt.Println("listening on", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Println("serve:", err)
		os.Exit(1)
	}
	fmt.Println("served", atomic.LoadInt64(&count))
}
