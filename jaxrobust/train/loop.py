"""``train_and_evaluate(config, workdir)``: train every model a config names, with checkpoints.

For each entry of ``config.models``: build the model, put the training and validation sets on the
devices, restore the latest checkpoint if the workdir has one (resume), then run one jitted call
per epoch, validate, append a row to ``workdir/metrics.jsonl`` and save an Orbax checkpoint
(last and best kept). Randomness is a pure function of ``(config.seed, model name, epoch)``, so a
resumed run ends with exactly the parameters of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxrobust import data as datasets
from jaxrobust import distributed
from jaxrobust.config import config_to_dict, load_workdir_config, resolve_config, save_config
from jaxrobust.config.schema import plain
from jaxrobust.data.batching import padded_batches, steps_per_epoch
from jaxrobust.data.preprocess import Preprocess
from jaxrobust.data.splits import carve_validation
from jaxrobust.errors import ConfigError, JaxrobustError, NonFiniteLossError
from jaxrobust.inference.methods import build_posterior, check_posterior_config
from jaxrobust.inference.samples import save_posterior
from jaxrobust.models import Model, build_model
from jaxrobust.models.base import merge_variables, split_variables
from jaxrobust.nn.conv_ops import cpu_compiler_options
from jaxrobust.registry import unknown_name_message
from jaxrobust.sweep import LOSS_WEIGHTS_COLLECTION, Sweep, check_sweep_names
from jaxrobust.train.adversarial import adversarial_training
from jaxrobust.train.checkpoint import ModelCheckpoints, committed_epochs
from jaxrobust.train.epoch import TrainState, make_eval_pass, make_train_epoch
from jaxrobust.train.feed import batch_spec as feed_batch_spec
from jaxrobust.train.feed import host_epoch_indices, resolve_feed, shard_batches
from jaxrobust.train.optim import build_optimizer
from jaxrobust.train.sharding import (
    check_batch_divisible,
    data_mesh,
    replicated,
    runs_sharded,
    shards_runs,
)
from jaxrobust.workdir import (
    METRICS_FILENAME,
    WorkdirLock,
    append_jsonl,
    prepare_workdir,
    reconcile_metrics,
    translate_os_errors,
)

# Keys that may change between a run and its resumption (they do not change what an epoch does).
RESUMABLE_KEYS = ("num_epochs", "evaluate", "progress")

EpochHook = Callable[[str, int, TrainState], None]


def model_key(seed: int, name: str) -> jax.Array:
    """Root key of one model: independent of the order of models in the config."""
    return jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()))


def run_keys(seed: int, name: str, num_runs: int | None) -> jax.Array:
    """Root key(s) of a model's runs: run r of R is the single run with seed ``seed + r``.

    ``num_runs=None`` gives the single key :func:`model_key`; an integer R gives [R] keys, so
    R runs trained as one vmapped program equal R separate runs with seeds seed..seed+R-1.
    """
    if num_runs is None:
        return model_key(seed, name)
    seeds = seed + jnp.arange(num_runs, dtype=jnp.uint32)
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), zlib.crc32(name.encode())))(
        seeds
    )


def _per_run(fn: Callable, keys: jax.Array, num_runs: int | None):
    """``fn(key)`` for one run, vmapped over the run axis when there is one."""
    return fn(keys) if num_runs is None else jax.vmap(fn)(keys)


def checkpoint_dir(workdir: str | os.PathLike, name: str) -> Path:
    return Path(workdir).absolute() / "checkpoints" / name


def build_from_config(config: ml_collections.ConfigDict, name: str) -> tuple[Model, Preprocess]:
    """The model ``config.models[name]`` and the preprocessing of ``config.data``.

    The model is built from its ``kind`` and ``architecture`` sections, then wrapped by the
    ``training.adversarial_training`` section when there is one.
    """
    if name not in config.models:
        raise ConfigError(unknown_name_message("model", name, config.models, where="config.models"))
    info = datasets.dataset_info(config.data.name)
    preprocess = Preprocess.from_config(plain(config.data.get("preprocess")))
    image_shape = preprocess.output_shape(info.image_shape)
    section = config.models[name]
    architecture = plain(section.get("architecture")) or {}
    model = build_model(section.kind, architecture, image_shape, info.num_classes)
    adversarial = (section.get("training") or {}).get("adversarial_training")
    if adversarial is not None:
        model = adversarial_training(model, plain(adversarial), name)
    return model, preprocess


def abstract_variables(
    model: Model,
    preprocess: Preprocess,
    config,
    sharding=None,
    num_runs: int | None = None,
    *,
    sweep: Sweep | None = None,
) -> Any:
    """Shapes/dtypes of the model's variables (with a leading [R] run axis when ``num_runs``;
    with a ``sweep``, its [M] members and their ``loss_weights`` collection)."""
    info = datasets.dataset_info(config.data.name)
    example = jnp.zeros((1, *preprocess.output_shape(info.image_shape)), jnp.float32)
    if sweep is not None:
        num_runs = sweep.num_members
    keys = run_keys(0, "abstract", num_runs)
    shapes = jax.eval_shape(
        lambda k: _per_run(lambda key: model.init(key, example), k, num_runs), keys
    )
    if sweep is not None:
        weights = {n: jax.ShapeDtypeStruct((num_runs,), jnp.float32) for n in sweep.names}
        shapes = {**shapes, LOSS_WEIGHTS_COLLECTION: weights}
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def sweep_keys(seed: int, name: str, sweep: Sweep) -> jax.Array:
    """Root keys ``[M]`` of a sweep's members: member (s, r) has run r's key of
    :func:`run_keys`, the same in every setting (the thesis: "the same random seed for the exact
    same setting"), so it equals the separately trained model with that setting."""
    base = run_keys(seed, name, sweep.num_runs)
    if sweep.num_runs is None:
        return jnp.stack([base] * sweep.num_members)
    return base[jnp.asarray(sweep.member_runs())]


def check_buildable(config: ml_collections.ConfigDict) -> None:
    """Build every model of ``config`` (shapes only, ``jax.eval_shape``), check its posterior
    and optimizer sections: a mistake in the last model surfaces before the first trains."""
    for name in config.models:
        training = config.models[name].training
        try:
            model, preprocess = build_from_config(config, name)
            sweep = Sweep.from_training(training)
            if sweep is not None:
                check_sweep_names(sweep, model.loss_weights, f"config.models.{name}.training")
            abstract_variables(
                model, preprocess, config, num_runs=training.get("num_runs"), sweep=sweep
            )
            build_optimizer(plain(training.optimizer), steps_per_epoch=1)
        except JaxrobustError:
            raise
        except (ValueError, TypeError) as err:
            # A network that cannot take these options or this image size (e.g. a decoder
            # whose size is not divisible by its strides) is a config mistake, not a bug.
            raise ConfigError(
                f"config.models.{name} cannot be built: {err} Change its architecture section "
                "(or data.preprocess) so the network fits the images."
            ) from err
        if training.get("posterior"):
            try:
                check_posterior_config(plain(training.posterior), name)
            except ValueError as err:
                raise ConfigError(str(err)) from None


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    hooks: Sequence[EpochHook] = (),
    devices: Sequence[jax.Device] | None = None,
) -> dict[str, dict]:
    """Train all ``config.models`` into ``workdir``; returns each model's last metrics.

    Args:
      config: experiment config (see ``experiments/quickstart.py`` for the fields).
      workdir: output directory: ``config.json``, ``metrics.jsonl``, ``checkpoints/<model>/``.
      hooks: ``hook(model_name, epoch, state)`` called after each epoch's checkpoint is written.
      devices: devices of the data-parallel mesh (default: all devices, of every process).
    """
    workdir = Path(workdir)
    config = resolve_config(config)  # every default filled; unknown keys refused
    check_buildable(config)  # every model, before anything is written or trained
    _check_multiprocess(config)
    prepare_workdir(workdir)  # a directory we can write to (WorkdirError otherwise)
    main = distributed.is_main_process()  # process 0 writes the side files and logs
    lock = WorkdirLock(workdir, purpose="train") if main else contextlib.nullcontext()
    with lock:  # one writer at a time
        _check_resumable(config, workdir)  # nothing rewritten before this passes
        if main:
            with translate_os_errors(workdir / "config.json", "write the config"):
                save_config(config, workdir)
        distributed.sync("jaxrobust config written")
        mesh = data_mesh(devices)
        summary = {}
        for name in config.models:
            distributed.set_resume_hint(_resume_hint(workdir, name))
            try:
                summary[name] = _train_model(config, workdir, name, mesh, hooks)
            except Exception as err:
                peer = distributed.peer_failure(err, resume_hint=_resume_hint(workdir, name))
                if peer is not None:
                    raise peer from err
                raise
    return summary


def _check_multiprocess(config: ml_collections.ConfigDict) -> None:
    """What several processes cannot train yet is refused before anything is written."""
    if distributed.process_count() == 1:
        return
    for name in config.models:
        if config.models[name].training.get("posterior"):
            raise ConfigError(
                f"config.models.{name} has a posterior section: posterior methods (SWAG, "
                "SG-MCMC, BBB, HMC) train in one process only for now. Train it with a single "
                "process (several devices of one host are used), or drop the section."
            )


def _resume_hint(workdir: Path, name: str) -> str:
    epoch = max(committed_epochs(checkpoint_dir(workdir, name)), default=0)
    where = f"epoch {epoch}" if epoch else "the start (no checkpoint was written yet)"
    return f"training resumes from {where} of model {name!r} in {workdir}"


def _train_model(config, workdir: Path, name: str, mesh, hooks) -> dict:
    section = config.models[name]
    cfg = section.training
    model, preprocess = build_from_config(config, name)
    progress = config.get("progress", True)
    (train_images, train_labels), (val_images, val_labels) = training_data(config, progress)
    main = distributed.is_main_process()
    progress = progress and main
    feed = resolve_feed(config.data.get("feed", "auto"), distributed.process_count())

    batch_size = cfg.batch_size
    eval_batch_size = cfg.get("eval_batch_size", 1000)
    steps = steps_per_epoch(len(train_images), batch_size)
    optimizer = build_optimizer(plain(cfg.optimizer), steps)

    negatives = _auxiliary_negatives(section, name, train_images.shape[1:], progress)
    on_devices = replicated(mesh)
    negatives = None if negatives is None else jax.device_put(negatives, on_devices)
    train_labels, val_labels = train_labels.astype(np.int32), val_labels.astype(np.int32)
    if feed == "device":  # put on the devices once; the jitted epoch gathers its batches
        train_images, train_labels, val_images, val_labels = jax.device_put(
            (train_images, train_labels, val_images, val_labels), on_devices
        )

    num_runs = _num_runs(cfg, name)
    example = preprocess(jnp.asarray(train_images[:1]))
    posterior = _posterior(cfg, name, model, optimizer, example, steps, len(train_images), config)
    if posterior is not None:
        model, optimizer = posterior.model, posterior.optimizer
        num_runs = posterior.num_runs if posterior.num_runs is not None else num_runs
    sweep = Sweep.from_training(cfg)
    if sweep is not None:  # settings x runs, stacked like runs (jaxrobust.sweep)
        check_sweep_names(sweep, model.loss_weights, f"config.models.{name}.training")
        num_runs = sweep.num_members
    # Made under jit with a replicated output: the same global array in every process.
    keys = jax.jit(
        lambda: (
            run_keys(config.seed, name, num_runs)
            if sweep is None
            else sweep_keys(config.seed, name, sweep)
        ),
        out_shardings=on_devices,
    )()
    shard_runs = shards_runs(num_runs, mesh)
    if not shard_runs:
        check_batch_divisible(batch_size, mesh)
        check_batch_divisible(eval_batch_size, mesh, "eval_batch_size")
    state_sharding = runs_sharded(mesh) if shard_runs else on_devices

    def init(key):
        params, model_state = split_variables(model.init(jax.random.fold_in(key, 0), example))
        return TrainState(jnp.zeros((), jnp.int32), params, model_state, optimizer.init(params))

    # Jitted so that no two leaves share a buffer (an optimizer state that starts as a copy of
    # the params, e.g. SWAG's mean, would otherwise be donated twice by the first epoch).
    state = jax.jit(lambda k: _per_run(init, k, num_runs), out_shardings=state_sharding)(keys)
    if sweep is not None:  # each member's loss weights, read by the model's loss
        weights = jax.device_put(
            {n: jnp.asarray(v) for n, v in sweep.member_values().items()}, state_sharding
        )
        state = state._replace(model_state={**state.model_state, LOSS_WEIGHTS_COLLECTION: weights})

    checkpoints = ModelCheckpoints(
        checkpoint_dir(workdir, name),
        best_metric=cfg.get("best_metric", "val/loss"),
        best_mode=cfg.get("best_mode", "min"),
        discard_incomplete=main,  # a step whose save or deletion a kill interrupted
    )
    start_epoch = 0
    if checkpoints.epochs():
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=state_sharding), state
        )
        # The newest kept epoch that passes its integrity check (a damaged one is set aside
        # with a warning); None: nothing intact, train from epoch 0 (deterministic either way).
        resumed = checkpoints.restore_latest_intact_train_state(
            merge_variables(abstract.params, abstract.model_state), abstract.opt_state
        )
        if resumed is not None:
            start_epoch, variables, opt_state, meta = resumed
            params, model_state = split_variables(variables)
            step = jnp.full(state.step.shape, meta["step"], jnp.int32)
            state = TrainState(step, params, model_state, opt_state)
            state = jax.device_put(state, state_sharding)

    # One row per (model, epoch): rows of epochs after the one restored (logged, then killed
    # before their checkpoint) and duplicates are removed; the next row records the resume.
    dropped = reconcile_metrics(workdir, name, start_epoch) if main else []
    resume_marker = {}
    if start_epoch or dropped:
        resume_marker = {
            "resumed_from_epoch": start_epoch,
            "dropped_rows": len(dropped),
            "dropped_epoch_seconds": sum(float(r.get("epoch_seconds", 0.0)) for r in dropped),
        }

    train_epoch = make_train_epoch(
        model, optimizer, preprocess, batch_size, mesh, num_runs, shard_runs, feed
    )
    eval_pass = make_eval_pass(model, preprocess, eval_batch_size, mesh, num_runs, shard_runs, feed)
    processes = distributed.process_count()
    parallelism = f"{'runs' if shard_runs else 'data'} over {mesh.devices.size} device(s)" + (
        f" in {processes} processes" if processes > 1 else ""
    )
    derive_keys = jax.jit(
        lambda root, stream, epoch: _per_run(
            lambda k: jax.random.fold_in(jax.random.fold_in(k, stream), epoch), root, num_runs
        ),
        out_shardings=on_devices,
    )

    def epoch_keys(stream: int, epoch: int) -> jax.Array:
        return derive_keys(keys, stream, epoch)

    feeder = _Feeder(feed, mesh, shard_runs, num_runs, batch_size, eval_batch_size)

    def epoch_data(epoch: int):
        """(images, labels) of one epoch as the jitted epoch takes them."""
        if feed == "device":
            return train_images, train_labels
        return feeder.train_batches(train_images, train_labels, epoch_keys(1, epoch))

    validation = (
        (val_images, val_labels, None)
        if feed == "device"
        else feeder.eval_batches(val_images, val_labels)
    )

    compile_start = time.perf_counter()
    train_epoch = train_epoch.lower(state, *epoch_data(0), epoch_keys(1, 0), negatives).compile(
        compiler_options=cpu_compiler_options() or None
    )
    compile_seconds = time.perf_counter() - compile_start

    num_epochs = cfg.num_epochs
    last = {}
    bar = tqdm(
        range(start_epoch + 1, num_epochs + 1),
        desc=f"train {name}",
        unit="epoch",
        initial=start_epoch,
        total=num_epochs,
        disable=not progress,
    )
    try:
        for epoch in bar:
            tic = time.perf_counter()
            state, step_metrics = train_epoch(
                state, *epoch_data(epoch), epoch_keys(1, epoch), negatives
            )
            step_metrics = distributed.host_value(step_metrics)
            losses = step_metrics["loss"]
            seconds = time.perf_counter() - tic
            _raise_if_not_finite(losses, name, epoch, steps, checkpoints)
            val = eval_pass(
                state.params,
                state.model_state,
                *validation[:2],
                epoch_keys(2, epoch),
                validation[2],
            )
            val = distributed.host_value(val)
            row = {"model": name, "epoch": epoch, "step": int(np.ravel(state.step)[0])}
            row.update({f"train/{k}": float(np.mean(v)) for k, v in step_metrics.items()})
            row.update({f"val/{k}": float(np.mean(v)) for k, v in val.items()})
            if num_runs is not None:
                row["num_runs"] = num_runs
                row.update({f"val/{k}/runs": np.asarray(v).tolist() for k, v in val.items()})
            row["parallelism"] = parallelism
            row["epoch_seconds"] = seconds
            row["images_per_second"] = steps * batch_size * (num_runs or 1) / seconds
            if epoch == start_epoch + 1:
                row["compile_seconds"] = compile_seconds
                row.update(resume_marker)
            if main:
                append_jsonl(workdir / METRICS_FILENAME, row, fsync=True)
            meta = {"epoch": epoch, "step": row["step"], "kind": model.kind, "num_runs": num_runs}
            variables = merge_variables(state.params, state.model_state)
            with translate_os_errors(checkpoints.directory, f"save checkpoint epoch {epoch}"):
                checkpoints.save(epoch, variables, state.opt_state, meta, row)
            bar.set_postfix(
                loss=f"{row['train/loss']:.4g}",
                val=f"{row.get(checkpoints.best_metric, float('nan')):.4g}",
                img_s=f"{row['images_per_second']:.0f}",
            )
            last = row
            with translate_os_errors(checkpoints.directory, f"save checkpoint epoch {epoch}"):
                checkpoints.wait()
            distributed.set_resume_hint(
                f"training resumes from epoch {epoch} of model {name!r} in {workdir}"
            )
            for hook in hooks:
                hook(name, epoch, state)
    finally:
        bar.close()
        checkpoints.wait()
        checkpoints.close()
    last["best_epoch"] = checkpoints.best_epoch()
    if posterior is not None:

        def train_batch(n: int) -> dict:
            images = jnp.asarray(train_images[:n])
            return {"image": preprocess(images), "label": jnp.asarray(train_labels[:n])}

        with translate_os_errors(posterior_dir(workdir, name), "save the posterior samples"):
            path = _save_posterior(posterior, state, train_batch, config.seed, workdir, name)
        last["posterior"] = str(path)
    return last


class _Feeder:
    """Host-fed batches of one model (``feed="host"``, :mod:`jaxrobust.train.feed`)."""

    def __init__(self, feed, mesh, shard_runs, num_runs, batch_size, eval_batch_size):
        self.feed, self.mesh, self.shard_runs = feed, mesh, shard_runs
        self.num_runs, self.batch_size, self.eval_batch_size = num_runs, batch_size, eval_batch_size

    def train_batches(self, images, labels, epoch_keys):
        idx = host_epoch_indices(epoch_keys, len(images), self.batch_size, self.num_runs)
        sharding = feed_batch_spec(self.mesh, idx.ndim, shard_runs=self.shard_runs)
        return shard_batches(images, idx, sharding), shard_batches(labels, idx, sharding)

    def eval_batches(self, images, labels):
        idx, mask = padded_batches(len(images), self.eval_batch_size)
        sharding = feed_batch_spec(self.mesh, idx.ndim)
        fed_mask = shard_batches(
            mask.reshape(-1), np.arange(mask.size).reshape(mask.shape), sharding
        )
        return shard_batches(images, idx, sharding), shard_batches(labels, idx, sharding), fed_mask


def training_data(config, progress: bool = False):
    """``((train_images, train_labels), (val_images, val_labels))`` of ``config.data``.

    ``data.validation_split`` "train" (default) carves ``data.validation_size`` examples (count
    or fraction, default 5000) from the training split with ``data.validation_seed`` (default
    0), before ``train_limit``/``validation_limit`` apply; "test" validates on the test split.
    """
    data = config.data
    images, labels = datasets.load(data.name, "train", progress=progress)
    split = data.get("validation_split", "train")
    if split == "train":
        (images, labels), (val_images, val_labels) = carve_validation(
            images,
            labels,
            size=data.get("validation_size", 5000),
            seed=data.get("validation_seed", 0),
        )
    else:
        val_images, val_labels = datasets.load(data.name, split, progress=progress)
    limit = data.get("train_limit")
    if limit:
        images, labels = images[:limit], labels[:limit]
    val_limit = data.get("validation_limit")
    if val_limit:
        val_images, val_labels = val_images[:val_limit], val_labels[:val_limit]
    return (images, labels), (val_images, val_labels)


def posterior_dir(workdir: str | os.PathLike, name: str) -> Path:
    """Where the posterior samples of model ``name`` are written (see jaxrobust.inference)."""
    return Path(workdir).absolute() / "posterior" / name


def _posterior(cfg, name, model, optimizer, example, steps, num_train, config):
    """The posterior method of ``cfg.posterior`` (None for a point estimate)."""
    section = cfg.get("posterior")
    if not section:
        return None
    try:
        checked = check_posterior_config(plain(section), name)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if cfg.get("num_runs") is not None:
        raise ConfigError(
            f"config.models.{name}: num_runs and a posterior section cannot be combined yet; "
            "train repeated posterior runs as separate workdirs (or use posterior.members)."
        )
    return build_posterior(
        checked,
        model,
        optimizer,
        example,
        steps_per_epoch=steps,
        num_train=num_train,
        num_epochs=cfg.num_epochs,
        seed=config.seed,
        learning_rate=float(cfg.optimizer.get("learning_rate", 1e-3)),
    )


def _save_posterior(posterior, state, train_batch, seed: int, workdir: Path, name: str) -> Path:
    """Draw/collect the samples from the final state and write them with their meta."""
    key = jax.random.fold_in(model_key(seed, name), 3)
    samples, meta = posterior.finalize(state, key, train_batch)
    cfg_meta = {"method": posterior.method, "model": name, "step": int(np.ravel(state.step)[0])}
    return save_posterior(posterior_dir(workdir, name), samples, {**cfg_meta, **meta})


def _auxiliary_negatives(section, name: str, image_shape, progress: bool) -> np.ndarray | None:
    """Training images of ``negatives.dataset`` when ``negatives.source == "dataset"``."""
    negatives = (section.get("architecture") or {}).get("negatives") or {}
    if negatives.get("source") != "dataset":
        return None
    dataset = negatives.get("dataset")
    if not dataset:
        raise ConfigError(
            f"config.models.{name}.negatives.source is 'dataset' but negatives.dataset is not "
            f"set; name one of {datasets.known_datasets()}."
        )
    images, _ = datasets.load(dataset, "train", progress=progress)
    if images.shape[1:] != tuple(image_shape):
        raise ConfigError(
            f"Auxiliary negatives {dataset} have images {images.shape[1:]}, the training set "
            f"{tuple(image_shape)}; choose a dataset of the same shape."
        )
    return images


def _num_runs(cfg, name: str) -> int | None:
    num_runs = cfg.get("num_runs")
    if num_runs is not None and (not isinstance(num_runs, int) or num_runs < 1):
        raise ConfigError(
            f"config.models.{name}.num_runs must be a positive integer (or absent for one "
            f"unstacked run), got {num_runs!r}."
        )
    return num_runs


def _raise_if_not_finite(losses: np.ndarray, name: str, epoch: int, steps: int, checkpoints):
    """``losses`` is [steps] or [runs, steps]; names the first non-finite step (and run)."""
    bad = np.argwhere(~np.isfinite(np.atleast_2d(losses)))
    if bad.size == 0:
        return
    run, first = (int(i) for i in bad[np.argmin(bad[:, 1])])
    if losses.ndim == 2:
        name = f"{name} (run {run})"
    losses = np.atleast_2d(losses)[run]
    global_step = (epoch - 1) * steps + first + 1
    checkpoints.wait()
    kept = checkpoints.latest_epoch()
    kept_text = (
        f"the last good checkpoint (epoch {kept}) is kept in {checkpoints.directory}"
        if kept
        else "no checkpoint had been written yet"
    )
    raise NonFiniteLossError(
        f"Model {name!r}: the training loss became {losses[first]} at step {global_step} "
        f"(epoch {epoch}, step {first + 1} of {steps}); training stopped and {kept_text}. "
        "Lower the learning rate, check the inputs for NaN/inf, or clip gradients."
    )


def _strip(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _strip(v) for k, v in tree.items() if k not in RESUMABLE_KEYS}
    return tree


def _check_resumable(config: ml_collections.ConfigDict, workdir: Path) -> None:
    """A workdir holds one experiment: refuse a config that trains something else there, or
    fewer epochs than a model's checkpoints already have (config.json would then claim a
    provenance no checkpoint has)."""
    _check_epochs_not_reduced(config, workdir)
    path = workdir / "config.json"
    if not path.is_file():
        return
    old = _strip(_stored_config(workdir))
    new = _strip(config_to_dict(config))
    if old != new:
        changed = sorted(_diff_keys(old, new))
        raise ConfigError(
            f"{workdir} already holds a run with a different config (changed: {changed}). "
            "Use a new --workdir, or delete the old one to start over. Only "
            f"{list(RESUMABLE_KEYS)} may change when resuming."
        )


def _stored_config(workdir: Path) -> dict:
    """The workdir's config.json with today's defaults filled in, so that a key added to the
    schema since that run (stored nowhere, equal to its default) is no difference; the raw JSON
    if it no longer resolves (the comparison then names what changed)."""
    raw = json.loads((workdir / "config.json").read_text())
    try:
        return config_to_dict(load_workdir_config(workdir))
    except ConfigError:
        return raw


def _trained_epoch(workdir: Path, name: str) -> int:
    """The newest epoch checkpointed for model ``name`` (0 when none)."""
    directory = checkpoint_dir(workdir, name)
    if not directory.is_dir():
        return 0
    checkpoints = ModelCheckpoints(directory)
    try:
        return max(checkpoints.epochs(), default=0)
    finally:
        checkpoints.close()


def _check_epochs_not_reduced(config: ml_collections.ConfigDict, workdir: Path) -> None:
    for name in config.models:
        num_epochs = config.models[name].training.num_epochs
        reached = _trained_epoch(workdir, name)
        if reached > num_epochs:
            raise ConfigError(
                f"config.models.{name}.training.num_epochs={num_epochs}, but model {name!r} in "
                f"{workdir} is already trained to epoch {reached}: resuming would record a "
                f"config of {num_epochs} epochs that no checkpoint was trained with. Fix: use "
                f"num_epochs >= {reached} (--config.models.{name}.training.num_epochs="
                f"{reached}), or evaluate an earlier epoch with `jaxrobust evaluate --workdir "
                f"{workdir} --config.evaluate.checkpoint=N` (kept epochs: the last and the best)."
            )


def _diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in set(old) | set(new):
            out += _diff_keys(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]
