package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockSingleNode holds, for a SQLite store, an exclusive lock on PATH.lock for as long as the
// service runs: SQLite is one node, and a second serve on the same file would run a second
// engine against it. Other stores need no lock (PostgreSQL elects a leader among replicas).
func lockSingleNode(storeURL string) (release func(), err error) {
	path, ok := strings.CutPrefix(storeURL, "sqlite:")
	if !ok {
		return func() {}, nil
	}
	lockPath := path + ".lock"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--store %s: cannot open the lock file %s: %w", storeURL, lockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(lockPath); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = " (pid " + strings.TrimSpace(string(b)) + ")"
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--store %s: another omnipresence serve%s uses this SQLite store; SQLite is single-node: "+
				"run one serve per file, or run replicas on PostgreSQL (--store postgres://…, docs/operations.md)", storeURL, holder)
		}
		return nil, fmt.Errorf("--store %s: cannot lock %s: %w", storeURL, lockPath, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = f.Truncate(0)
		f.Close()
	}, nil
}
