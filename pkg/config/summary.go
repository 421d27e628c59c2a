package config

import "github.com/lwr-go/lwr/pkg/metrics"

// Files of a run folder (docs/run-folder.md).
const (
	ConfigFile     = "config.json"
	LogFile        = "log.jsonl"
	SummaryFile    = "summary.json"
	SubsetFile     = "train_subset.txt"
	CheckpointFile = "checkpoint.pt"
	PrevCheckpoint = "checkpoint.prev.pt" // the checkpoint before the last, kept in case the last is unreadable
)

// MaxJSONBytes bounds a config.json or summary.json as read back: ours are
// a few kilobytes (summary.json holds per-class lists of 1,000 entries at
// most for ImageNet-LT).
const MaxJSONBytes = 16 << 20

// Summary is summary.json: the final result of a run.
type Summary struct {
	Config      Run             `json:"config"`
	TrainCounts []int64         `json:"train_counts"` // training images per class
	Final       metrics.Metrics `json:"final"`
	Seconds     float64         `json:"seconds"` // the run's training and evaluation time, resumes included
	// Classifier holds the final classifier's row norms and cosine
	// statistics, and CosineHistogram the distribution of its row cosines
	// (report.CosineBins bins over [-1, 1], fractions of pairs): what a
	// table plots, without reading the checkpoint again.
	Classifier      *metrics.ClassifierStats `json:"classifier,omitempty"`
	CosineHistogram []float64                `json:"cosine_histogram,omitempty"`
}
