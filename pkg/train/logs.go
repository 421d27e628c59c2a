package train

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/regularfile"
)

// TrainLog is the run folder's plain-text log: the lines a run prints, with
// their time, kept whatever the terminal.
const TrainLog = "train.log"

// Console is where a run reports itself as it trains, besides the lines it
// keeps in its folder's train.log.
type Console struct {
	W io.Writer // usually stderr
	// Live: W is a terminal, where a progress line is rewritten in place
	// after every step. Otherwise (a file, a pipe, a batch scheduler's
	// log) W gets plain lines: one per epoch, one per evaluation and, in a
	// long epoch, a progress line at most every Config.LogEvery.
	Live   bool
	Prefix string // written before each line, to tell apart runs that share W (--parallel)
}

// runLog writes a run's lines to its console and to train.log; it is the
// run's progress Observer too. Only the lead rank has one; its methods do
// nothing on a nil *runLog.
type runLog struct {
	con    *Console
	file   *os.File      // train.log
	path   string        // of train.log
	every  time.Duration // plain progress lines at most this often; 0: none
	last   time.Time     // of the last plain progress line (or the start)
	left   time.Duration // the last step's estimate of the time to the end
	steps  int           // training steps completed in the run so far
	failed error         // the first failed write to train.log
}

// openRunLog opens dir's train.log for appending (creating it): a regular
// file only, opened without blocking.
func openRunLog(dir string, con *Console, every time.Duration) (*runLog, error) {
	path := filepath.Join(dir, TrainLog)
	f, err := regularfile.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &runLog{con: con, file: f, path: path, every: every, last: time.Now()}, nil
}

// close closes train.log, returning the first write error, if any.
func (l *runLog) close() error {
	if l == nil {
		return nil
	}
	if err := l.file.Close(); l.failed == nil && err != nil {
		l.failed = fmt.Errorf("%s: %w", l.path, err)
	}
	return l.failed
}

// err is the first failed write to train.log, naming it.
func (l *runLog) err() error {
	if l == nil {
		return nil
	}
	return l.failed
}

// printf writes one line, with the time, to train.log and the console (on
// a terminal, over the live progress line).
func (l *runLog) printf(format string, args ...any) {
	if l == nil {
		return
	}
	line := time.Now().Format("2006-01-02 15:04:05") + "  " + fmt.Sprintf(format, args...) + "\n"
	if _, err := io.WriteString(l.file, line); err != nil && l.failed == nil {
		l.failed = fmt.Errorf("%s: %w", l.path, err)
	}
	if l.con == nil || l.con.W == nil {
		return
	}
	if l.con.Live {
		io.WriteString(l.con.W, "\r\033[K")
	}
	io.WriteString(l.con.W, l.con.Prefix+line)
}

// AfterStep rewrites the live line, or writes a plain progress line when
// LogEvery has passed since the last.
func (l *runLog) AfterStep(s Step) {
	if l == nil {
		return
	}
	l.left, l.steps = s.Left, l.steps+1
	if l.con != nil && l.con.Live && l.con.W != nil {
		fmt.Fprintf(l.con.W, "\r%sepoch %d/%d  step %d/%d  loss %.4f  %.0f img/s  ETA %s   ",
			l.con.Prefix, s.Epoch+1, s.Epochs, s.Batch+1, s.Batches, s.Loss, s.ImagesSec, s.Left.Round(time.Second))
		return
	}
	if l.every > 0 && time.Since(l.last) >= l.every && s.Batch+1 < s.Batches {
		l.last = time.Now()
		l.printf("epoch %d/%d  step %d/%d  loss %.4f  %.0f img/s  ETA %s",
			s.Epoch+1, s.Epochs, s.Batch+1, s.Batches, s.Loss, s.ImagesSec, s.Left.Round(time.Second))
	}
}

// epoch writes the lines of a finished epoch: its training, and its
// evaluation when it had one.
func (l *runLog) epoch(epochs int, line EpochLog) {
	if l == nil {
		return
	}
	l.last = time.Now()
	lwrPart := ""
	if line.Lambda > 0 || line.LossLWR > 0 {
		lwrPart = fmt.Sprintf("  R %.4f  λ %.3f", line.LossLWR, line.Lambda)
	}
	l.printf("epoch %d/%d done  loss %.4f%s  lr %.4g  %.0f img/s  %.1f s  ETA %s",
		line.Epoch, epochs, line.LossBal, lwrPart, line.LR, line.ImagesSec, line.Seconds, l.left.Round(time.Second))
	if m := line.Test; m != nil {
		l.printf("eval  %d/%d  %s", line.Epoch, epochs, evalText(*m))
	}
}

// evalText is an evaluation's metrics on one line.
func evalText(m metrics.Metrics) string {
	return fmt.Sprintf("top-1 %s  top-5 %s  many %s  medium %s  few %s  NLL %s  ECE %s", m.Top1, m.Top5, m.Many, m.Medium, m.Few, m.NLL, m.ECE)
}
