"""The label layouts, named once: what a source yields and what a task trains on.

    binary       float32 [B, 1] (a file may hold [B]): 0 or 1
    multi_label  float32 [B, C]: 0 or 1 per output
    sparse       int64 [B]: class ids in [0, C)

`label_histogram` also counts "categorical" labels (one-hot [B, C]) of a user's own
pipeline; no source yields them.
"""

LABEL_MODES = ("binary", "multi_label", "sparse")
COUNTED_LABEL_MODES = (*LABEL_MODES, "categorical")
