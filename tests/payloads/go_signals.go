// Go runtime signals: a nil dereference becomes a recoverable panic (SIGSEGV through the runtime's handler),
// os/signal.Notify gets SIGUSR1 sent with syscall.Kill, and (`go_signals.km wait`) SIGINT sent to km.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type node struct{ next *node; value int }

func deref(n *node) (value int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return n.next.value, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "wait" {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT)
		fmt.Println("ready")
		fmt.Println("got", <-c)
		return
	}
	_, err := deref(&node{})
	fmt.Println("recovered:", err)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case s := <-c:
		fmt.Println("notified:", s)
	case <-time.After(5 * time.Second):
		fmt.Println("no signal")
	}
}
