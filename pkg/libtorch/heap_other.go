//go:build !linux || !cgo

package libtorch

// setHeap does nothing outside Linux: the settings are glibc's.
func setHeap(mmapThreshold, trimThreshold, topPad int) bool { return false }
