"""Training: jitted epochs under ``lax.scan``, data parallelism, Orbax checkpoints, adversarial
training (a loss wrapper)."""

from jaxrobust.train.adversarial import adversarial_training
from jaxrobust.train.checkpoint import ModelCheckpoints
from jaxrobust.train.epoch import TrainState, make_eval_pass, make_train_epoch
from jaxrobust.train.loop import build_from_config, checkpoint_dir, train_and_evaluate

__all__ = [
    "ModelCheckpoints",
    "TrainState",
    "adversarial_training",
    "build_from_config",
    "checkpoint_dir",
    "make_eval_pass",
    "make_train_epoch",
    "train_and_evaluate",
]
