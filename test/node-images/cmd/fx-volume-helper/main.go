// fx-volume-helper is a STAND-IN for the busybox shell scripts local-path-provisioner's helper pods run by default
// (its ConfigMap's setup and teardown): it is the provisioner's setupCommand and teardownCommand, called as
// `fx-volume-helper -p <path> -s <bytes> -m <Filesystem|Block> -a <create|delete>`, and creates the volume's folder
// (mode 0777, as upstream's setup script) or removes it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	path := flag.String("p", "", "volume folder")
	flag.String("s", "", "size in bytes (unused: a folder has no size)")
	mode := flag.String("m", "Filesystem", "volume mode")
	action := flag.String("a", "", "create or delete")
	flag.Parse()
	if *path == "" || !filepath.IsAbs(*path) || filepath.Clean(*path) == "/" {
		fail("-p must be an absolute path below /, got %q", *path)
	}
	if *mode != "Filesystem" {
		fail("volume mode %q is not supported (Filesystem only)", *mode)
	}
	switch *action {
	case "create":
		if err := os.MkdirAll(*path, 0o777); err != nil {
			fail("%v", err)
		}
		// MkdirAll's mode is filtered by the umask; upstream's script runs `mkdir -m 0777`.
		if err := os.Chmod(*path, 0o777); err != nil {
			fail("%v", err)
		}
	case "delete":
		if err := os.RemoveAll(*path); err != nil {
			fail("%v", err)
		}
	default:
		fail("-a must be create or delete, got %q", *action)
	}
	fmt.Printf("%s %s\n", *action, *path)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fx-volume-helper: "+format+"\n", args...)
	os.Exit(1)
}
