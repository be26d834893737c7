"""`sinklab trajectory`: the sink metric of every checkpoint of a training series, in training order, on the
same token ids, and the curve they make (series.py: what a CHECKPOINT is; hub.py: hub revisions; api.py: the
resumable loop; outputs.py: trajectory.json, CSV, figures, HTML)."""
