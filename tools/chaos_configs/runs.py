"""Chaos target `runs`: R = 3 stacked runs of the CNN classifier (`training.num_runs = 3`)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("chaos_base", Path(__file__).with_name("_base.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)

#: What tools/chaos.py's decoy evaluation changes (default: fewer test images). The last epoch
#: instead of the best: other numbers from the same compiled passes (no extra compilation).
DECOY_OVERRIDES = ["evaluate.checkpoint=last"]


def get_config():
    model = _base.classifier()
    model["training"]["num_runs"] = 3
    # "Best" = the largest validation loss (usually epoch 1): two kept steps, and the decoy
    # evaluation of the last one has other numbers from the same compiled passes.
    model["training"].update(best_metric="val/loss", best_mode="max")
    return _base.base("runs", {"classifier": model})
