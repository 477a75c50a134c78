package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Log settings of every command (persistent flags of the root command).
var (
	logFormat = "text"
	logLevel  = "info"
)

func init() {
	f := rootCmd.PersistentFlags()
	f.StringVar(&logFormat, "log-format", logFormat, "log format on stderr: text or json")
	f.StringVar(&logLevel, "log-level", logLevel, "least severe level logged: debug, info, warn or error")
}

// checkLogFlags rejects log settings newLogger cannot honour.
func checkLogFlags() error {
	if logFormat != "text" && logFormat != "json" {
		return fmt.Errorf("--log-format must be text or json, not %q", logFormat)
	}
	if _, err := parseLevel(logLevel); err != nil {
		return err
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", s)
}

// newLogger logs to stderr as --log-format and --log-level say.
func newLogger() *slog.Logger { return newLoggerTo(os.Stderr) }

// newLoggerTo logs to w as --log-format and --log-level say.
func newLoggerTo(w io.Writer) *slog.Logger {
	level, err := parseLevel(logLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
