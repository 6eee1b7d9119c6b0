// Go's os/exec (a vfork-like clone, then execve) under km.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println("child", os.Args[1])
		os.Exit(3)
	}
	out, err := exec.Command(os.Args[0], "ok").Output()
	code := -1
	if e, ok := err.(*exec.ExitError); ok {
		code = e.ExitCode()
	}
	fmt.Printf("parent got %q exit %d\n", out, code)
}
