package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
)

// progressBar is a count-of-items bar on a terminal, and nothing
// otherwise (callers then print plain lines).
type progressBar struct {
	bar *progressbar.ProgressBar
}

func newProgressBar(w io.Writer, total int, what string) progressBar {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return progressBar{}
	}
	return progressBar{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p progressBar) plain() bool { return p.bar == nil }

func (p progressBar) set(n int) {
	if p.bar != nil {
		p.bar.Set(n)
	}
}

func (p progressBar) setTotal(n int) {
	if p.bar != nil {
		p.bar.ChangeMax(n)
	}
}

func (p progressBar) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
