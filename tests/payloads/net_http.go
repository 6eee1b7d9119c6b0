// A Go net/http server on 127.0.0.1: listens on port 0, prints the port, answers one request from the test and
// exits. Exercises Go's netpoller (epoll_pwait, eventfd2 or pipe2, accept4, nonblocking sockets) across the
// runtime's threads. Run by tests/integration/test_net_threads.py.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	done := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "hello from km, %s %s\n", r.Method, r.URL.Path)
		close(done)
	})}
	stopped := make(chan struct{})
	go func() {
		<-done
		srv.Shutdown(context.Background()) // waits until the answered connection is closed
		close(stopped)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Println("serve:", err)
		os.Exit(1)
	}
	<-stopped
	fmt.Println("served one request")
}
