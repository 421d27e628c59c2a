"""Reads a folder's event files with TensorBoard's own EventAccumulator and
prints what it holds as JSON: scalars (tag -> [[step, value], ...]),
histograms (tag -> [[step, num, min, max, sum of bucket counts], ...]),
images (tag -> [[step, width, height, PNG bytes], ...]) and text
(tag -> [[step, text], ...]). Used by the Go tests (pkg/tensorboard,
pkg/train) to check lwr's event files against the real reader."""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea

acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {}, "histograms": {}, "images": {}, "text": {}}
for tag in tags.get("scalars", []):
    out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
for tag in tags.get("histograms", []):
    out["histograms"][tag] = [[e.step, e.histogram_value.num, e.histogram_value.min, e.histogram_value.max,
                               sum(e.histogram_value.bucket)] for e in acc.Histograms(tag)]
for tag in tags.get("images", []):
    out["images"][tag] = [[e.step, e.width, e.height, len(e.encoded_image_string)] for e in acc.Images(tag)]
for tag in tags.get("tensors", []):
    events = acc.Tensors(tag)
    meta = acc.SummaryMetadata(tag)
    if meta.plugin_data.plugin_name == "text":
        out["text"][tag] = [[e.step, e.tensor_proto.string_val[0].decode()] for e in events]
print(json.dumps(out))
