"""Attack throughput: jaxrobust vs PyTorch attack libraries on the same MNIST CNN, one script.

Workloads (issue 6), on the first ``--images`` MNIST test images against the trained
``experiments/attacks/mnist_cnn.py`` (trained first when missing):

- PGD-40, L-inf, eps 0.3, step 0.01, random start.
- CW-L2, 5 binary-search steps x 100 Adam steps (lr 0.01, kappa 0, initial c 1e-3), no early
  abort (so that both sides do the same 500 gradient steps).

jaxrobust: :func:`jaxrobust.attacks.pgd` / :func:`~jaxrobust.attacks.carlini_wagner_l2` on the
whole batch, one jitted call (compiled ahead of time, with ``cpu_compiler_options()`` on CPU, as
training and evaluation compile). PyTorch: a twin of ``SmallCNN`` with the same weights (Conv
kernels ``(kh, kw, in, out) -> (out, in, kh, kw)``, the NHWC flatten order kept), then

- torchattacks 3.5.1 ``PGD`` and ``CW``. torchattacks' CW has no binary search over c and stops
  the whole batch once its summed loss rises between two checks (every steps/10 steps, no
  option to turn off): it is given ``steps=500`` at one c and its model calls are counted, so
  its rate per model call is comparable, its rate per image is not;
- foolbox 3.3.4 on a ``PyTorchModel``: ``LinfPGD`` and ``L2CarliniWagnerAttack`` with the
  binary search (the same algorithm as ours).

The ratio is against the fastest PyTorch library that runs the same workload (the same number
of model calls per image); model calls per image are counted by a forward hook. Batches of
``--batch`` images for every library (the whole 1,000 by default); ``torch.set_num_threads``
= the cores. Each runner is timed ``--repeats`` times after a warm-up (JAX: compilation only,
reported separately; PyTorch: one call on 10 images), runners interleaved.

    python tools/bench_attacks.py --output BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import jax
import numpy as np
from attack_models import ROOT, trained_cnn
from bench_report import add_suite_arguments, measure, run_stamp, stamp_text, write_section

from jaxrobust import attacks
from jaxrobust.devices import describe_devices
from jaxrobust.nn.conv_ops import cpu_compiler_options

BEGIN, END = "<!-- bench_attacks:begin -->", "<!-- bench_attacks:end -->"
PGD = {"epsilon": 0.3, "step_size": 0.01, "num_steps": 40}
CW = {"binary_search_steps": 5, "max_iterations": 100, "learning_rate": 1e-2, "c": 1e-3}


def torch_cnn(variables):
    """The ``SmallCNN`` twin (NCHW inputs in [0, 1]) with ``variables`` copied in."""
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv0 = nn.Conv2d(1, 32, 3, padding=1)
            self.conv1 = nn.Conv2d(32, 64, 3, padding=1)
            self.dense0 = nn.Linear(7 * 7 * 64, 128)
            self.dense1 = nn.Linear(128, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = nn.functional.max_pool2d(torch.relu(self.conv0(x)), 2)
            h = nn.functional.max_pool2d(torch.relu(self.conv1(h)), 2)
            h = h.permute(0, 2, 3, 1).flatten(1)  # the NHWC order of the Flax model
            return self.dense1(torch.relu(self.dense0(h)))

    model = SmallCNN().eval()
    params = jax.tree.map(np.asarray, variables["params"])
    pairs = [("conv0", "Conv_0"), ("conv1", "Conv_1"), ("dense0", "Dense_0"), ("dense1", "Dense_1")]
    with torch.no_grad():
        for mine, theirs in pairs:
            kernel = params[theirs]["kernel"]
            kernel = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
            getattr(model, mine).weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            getattr(model, mine).bias.copy_(torch.from_numpy(params[theirs]["bias"].copy()))
    for p in model.parameters():
        p.requires_grad_(False)
    model.calls = 0  # images passed forward, counted by the hook

    def count(module, inputs, output):
        module.calls += inputs[0].shape[0]

    model.register_forward_hook(count)
    return model


def jax_runners(
    logits_fn, x, y, pgd_options: dict | None = None, cw_options: dict | None = None,
    programs: dict | None = None,
) -> tuple[dict[str, Callable], dict[str, float]]:  # fmt: skip
    """``({"pgd": run, "cw": run}, compile seconds)``: each attack on the whole batch, one
    jitted call compiled ahead of time (``run(-1)``, the warm-up, does nothing). ``programs``
    (a dict) receives each attack's ``{"fn", "args", "compiled"}``."""
    loss = attacks.cross_entropy_loss(logits_fn)
    options = cpu_compiler_options() or None
    pgd_options = pgd_options or PGD
    cw_options = cw_options or CW

    def pgd(x, y, key):
        return attacks.pgd(loss, x, y, key=key, norm="linf", random_start=True, **pgd_options)

    def cw(x, y):
        return attacks.carlini_wagner_l2(
            logits_fn,
            x,
            y,
            initial_const=cw_options["c"],
            binary_search_steps=cw_options["binary_search_steps"],
            max_iterations=cw_options["max_iterations"],
            learning_rate=cw_options["learning_rate"],
            abort_early=False,
        ).adversarial

    compile_s, runners = {}, {}
    for name, fn, args in (("pgd", pgd, (x, y, jax.random.key(0))), ("cw", cw, (x, y))):
        jitted = jax.jit(fn)
        start = time.perf_counter()
        compiled = jitted.lower(*args).compile(compiler_options=options)
        compile_s[name] = time.perf_counter() - start
        if programs is not None:
            programs[name] = {"fn": jitted, "args": args, "compiled": compiled}

        def run(i, compiled=compiled, args=args):
            if i >= 0:
                jax.block_until_ready(compiled(*args))

        runners[name] = run
    return runners, compile_s


def torch_runners(
    model,
    x_np,
    y_np,
    batch: int,
    calls: dict[tuple[str, str], float],
    device=None,
    pgd_options: dict | None = None,
    cw_options: dict | None = None,
    missing: dict[str, str] | None = None,
) -> dict[str, dict[str, Callable]]:
    """``{library: {attack: run(i)}}``; each run writes its model calls per image to ``calls``
    and ends with a device synchronisation. With ``missing`` (a dict), a library that does not
    import is left out and recorded there (``{library: why}``) instead of raising."""
    import torch
    from bench_report import torch_sync

    device = device or torch.device("cpu")
    pgd_options = pgd_options or PGD
    cw_options = cw_options or CW
    x_all = torch.from_numpy(np.array(x_np.transpose(0, 3, 1, 2))).to(device)
    y_all = torch.from_numpy(np.array(y_np, np.int64)).to(device)
    steps_total = cw_options["binary_search_steps"] * cw_options["max_iterations"]
    libraries = {}
    try:
        import torchattacks

        libraries["torchattacks"] = {
            "pgd": torchattacks.PGD(
                model,
                eps=pgd_options["epsilon"],
                alpha=pgd_options["step_size"],
                steps=pgd_options["num_steps"],
            ),
            "cw": torchattacks.CW(
                model, c=cw_options["c"], kappa=0, steps=steps_total,
                lr=cw_options["learning_rate"],
            ),
        }  # fmt: skip
    except ImportError as err:
        if missing is None:
            raise
        missing["torchattacks"] = f"not importable ({err})"
    try:
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)

        def fmodel_attack(attack, xb, yb, eps):
            return attack(fmodel, xb, yb, epsilons=eps)[1]

        libraries["foolbox"] = {
            "pgd": lambda xb, yb: fmodel_attack(
                fb.attacks.LinfPGD(
                    rel_stepsize=pgd_options["step_size"] / pgd_options["epsilon"],
                    steps=pgd_options["num_steps"],
                ),
                xb,
                yb,
                pgd_options["epsilon"],
            ),
            "cw": lambda xb, yb: fmodel_attack(
                fb.attacks.L2CarliniWagnerAttack(
                    binary_search_steps=cw_options["binary_search_steps"],
                    steps=cw_options["max_iterations"],
                    stepsize=cw_options["learning_rate"],
                    initial_const=cw_options["c"],
                    abort_early=False,
                ),
                xb,
                yb,
                None,
            ),
        }
    except ImportError as err:
        if missing is None:
            raise
        missing["foolbox"] = f"not importable ({err})"

    def runner(lib, name, attack):
        def run(i):
            n = min(10, len(x_all)) if i < 0 else len(x_all)
            model.calls = 0
            for s in range(0, n, batch):
                attack(x_all[s : min(s + batch, n)], y_all[s : min(s + batch, n)])
            torch_sync(device)
            calls[(lib, name)] = model.calls / n

        return run

    return {
        lib: {name: runner(lib, name, attack) for name, attack in table.items()}
        for lib, table in libraries.items()
    }


def check_twin(logits_fn, model, x) -> float:
    import torch

    device = next(model.parameters()).device
    x_t = torch.from_numpy(np.array(np.asarray(x).transpose(0, 3, 1, 2)))
    with torch.no_grad():
        theirs = model(x_t.to(device)).cpu().numpy()
    ours = np.asarray(logits_fn(x))
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(ours)))


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        BEGIN,
        "## Attacks: PGD-40 and CW-L2 on an MNIST CNN, jaxrobust vs PyTorch attack libraries",
        "",
        f"Command: `python tools/bench_attacks.py --output BENCHMARKS.md` (`pip install -e "
        f'".[bench,test]"`). {stamp_text(meta["stamp"], on=meta["device"])} '
        f"{meta['images']} MNIST test images, the trained "
        "`experiments/attacks/mnist_cnn.py` CNN and its PyTorch twin (same weights; logits "
        f"agree to {meta['twin_rel_diff']:.1e} relative). PGD-40: L-inf, eps 0.3, step 0.01, "
        "random start. CW-L2: 5 binary-search steps x 100 Adam steps (lr 0.01, c0 1e-3, "
        "kappa 0), no early abort. torchattacks' CW has no binary search and stops the whole "
        "batch when its summed loss rises between two checks (no option to turn it off): given "
        "500 steps at one c it makes fewer model calls, so it is compared per call. Images/s = "
        "images / median seconds over "
        f"{meta['repeats']} interleaved runs, each library in batches of {meta['batch']}; "
        f"torch with {meta['threads']} threads. jaxrobust compile time (excluded): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in meta["compile_s"].items())
        + ".",
        "",
        "Cells: images/s (model calls per image). Ratio: jaxrobust / the fastest PyTorch "
        "library that did the same work; per call: the ratio of images x calls per second.",
        "",
        "| attack | jaxrobust | torchattacks | foolbox (PyTorch) | ratio | per-call ratio vs "
        "torchattacks / foolbox |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [
            f"{row['rate'][k]:.1f} ({row['calls'][k]:.0f})"
            for k in ("jaxrobust", "torchattacks", "foolbox")
        ]
        per_call = " / ".join(
            f"{row['per_call_ratio'][k]:.2f}x" for k in ("torchattacks", "foolbox")
        )
        lines.append(
            f"| {row['attack']} | {' | '.join(cells)} | **{row['ratio']:.2f}x** vs "
            f"{row['reference']} | {per_call} |"
        )
    lines += ["", "Target (issue 6): >= 1.0x on CPU, and on a GPU when one is available.", END]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- suite mode

#: Suite presets (tools/gpu/suite.py): images attacked (one batch), timed repeats, the CNN's
#: weights (``attack_models.quick_cnn``) and the attacks' sizes.
SUITE_SIZES = {
    "smoke": {"images": 16, "repeats": 1, "weights": "quick", "train_limit": 256, "epochs": 1,
              "pgd": {**PGD, "num_steps": 5},
              "cw": {**CW, "binary_search_steps": 2, "max_iterations": 10}},
    "cpu": {"images": 1000, "repeats": 2, "weights": "quick", "train_limit": 0, "epochs": 1,
            "pgd": PGD, "cw": CW},
    "gpu": {"images": 1000, "repeats": 3, "weights": "quick", "train_limit": 0, "epochs": 2,
            "pgd": PGD, "cw": CW},
}  # fmt: skip
TARGET = 1.0  # issue 6: at least PyTorch's attack libraries, on a CPU and on a GPU


def suite_main(args) -> int:
    from attack_models import quick_cnn
    from bench_report import (
        figure,
        missing,
        open_suite,
        program_cost,
        ratio_spec,
        workload_record,
    )

    device, dev, recorder, sizes = open_suite(args, SUITE_SIZES)
    pgd_options, cw_options = sizes["pgd"], sizes["cw"]
    n = args.images or sizes["images"]
    logits_fn, variables, x, y, info = quick_cnn(
        n, weights=args.weights or sizes["weights"], train_limit=sizes["train_limit"],
        epochs=sizes["epochs"],
    )  # fmt: skip
    model = torch_cnn(variables).to(dev)
    twin = check_twin(logits_fn, model, x[:100])
    programs: dict = {}
    jax_run, compile_s = jax_runners(logits_fn, x, y, pgd_options, cw_options, programs)
    calls: dict = {}
    absent: dict = {}
    torch_run = torch_runners(
        model, np.asarray(x), np.asarray(y), n, calls, dev, pgd_options, cw_options, absent
    )
    cw_steps = cw_options["binary_search_steps"] * cw_options["max_iterations"]
    our_calls = {"pgd": pgd_options["num_steps"], "cw": cw_steps}
    titles = {
        "pgd": f"PGD-{pgd_options['num_steps']} L-inf (eps {pgd_options['epsilon']}, step "
        f"{pgd_options['step_size']}, random start)",
        "cw": f"CW-L2 {cw_options['binary_search_steps']} x {cw_options['max_iterations']} "
        f"(lr {cw_options['learning_rate']}, c0 {cw_options['c']}, no early abort)",
    }
    for attack in ("pgd", "cw"):
        runners = {"jaxrobust": jax_run[attack]}
        runners.update({lib: table[attack] for lib, table in torch_run.items()})
        seconds = measure(runners, args.repeats or sizes["repeats"])
        program = programs[attack]
        figures = {
            "jaxrobust": figure(
                "jaxrobust (one jitted call)", seconds["jaxrobust"], n, side="jaxrobust",
                compile_s=compile_s[attack],
                cost=program_cost(program["fn"], program["args"], program["compiled"]),
                calls_per_image=our_calls[attack],
            )
        }  # fmt: skip
        for lib, label in (("torchattacks", "torchattacks"), ("foolbox", "foolbox (PyTorch)")):
            if lib in torch_run:
                figures[lib] = figure(
                    label, seconds[lib], n, side="pytorch", calls_per_image=calls[(lib, attack)]
                )
            else:
                figures[lib] = missing(label, "pytorch", absent.get(lib, "not run"))
        for fig in figures.values():
            if "rate" in fig:
                fig["call_rate"] = fig["rate"] * fig["calls_per_image"]
        if attack == "pgd":
            ratios = [
                ratio_spec("jaxrobust", "torchattacks", target=TARGET,
                           name="jaxrobust / torchattacks"),
                ratio_spec("jaxrobust", "foolbox", name="jaxrobust / foolbox"),
            ]  # fmt: skip
        else:
            ratios = [
                ratio_spec("jaxrobust", "torchattacks", target=TARGET, per="call_rate",
                           name="jaxrobust / torchattacks, per model call"),
                ratio_spec("jaxrobust", "foolbox", target=TARGET,
                           name="jaxrobust / foolbox (the same work)"),
            ]  # fmt: skip
        notes = [
            f"{n:,} images ({info['images']}) as one batch; CNN weights: {info['weights']}; "
            f"clean accuracy {info['clean_accuracy']:.3f}; PyTorch twin logits agree to "
            f"{twin:.1e} relative. Median of {args.repeats or sizes['repeats']} interleaved runs; "
            "model calls per image counted by a forward hook.",
        ]
        if attack == "cw":
            notes.append(
                "torchattacks' CW has no binary search and stops the whole batch when its summed "
                f"loss rises between checks: given {cw_steps} steps at one c it makes fewer "
                "model calls, so it is compared per model call; foolbox runs the same "
                "binary search as jaxrobust."
            )
        record = workload_record(
            titles[attack], "images/s", figures, ratios,
            params={"images": n, "attack": attack, "options": pgd_options if attack == "pgd"
                    else cw_options, "twin_rel_diff": twin, **info},
            notes=notes,
        )  # fmt: skip
        recorder.add_profiled(attack, record, args, jax_run[attack])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "attacks" / "mnist_cnn"))
    parser.add_argument("--images", type=int, default=None, help="images attacked (1000)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (3)")
    parser.add_argument("--output", default=None, help="BENCHMARKS.md to update")
    parser.add_argument(
        "--weights", choices=("quick", "random"), default=None,
        help="suite mode: the CNN trained on the fly (quick) or its initial weights",
    )  # fmt: skip
    add_suite_arguments(parser)
    args = parser.parse_args(argv)
    if args.preset:
        return suite_main(args)
    args.images = args.images or 1000
    args.repeats = args.repeats or 3

    import torch

    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    logits_fn, variables, x, y = trained_cnn(args.workdir, args.images)
    model = torch_cnn(variables)
    twin = check_twin(logits_fn, model, x[:100])
    assert twin < 1e-4, f"PyTorch twin disagrees with the JAX CNN ({twin:.2e})"

    jax_run, compile_s = jax_runners(logits_fn, x, y)
    calls: dict[tuple[str, str], float] = {}
    torch_run = torch_runners(model, np.asarray(x), np.asarray(y), args.batch, calls)
    our_calls = {"pgd": PGD["num_steps"], "cw": CW["binary_search_steps"] * CW["max_iterations"]}
    rows = []
    for attack, label in (("pgd", "PGD-40 L-inf"), ("cw", "CW-L2 5 x 100")):
        runners = {"jaxrobust": jax_run[attack]}
        runners.update({lib: table[attack] for lib, table in torch_run.items()})
        seconds = measure(runners, args.repeats)
        rate = {name: args.images / float(np.median(s)) for name, s in seconds.items()}
        row = {"attack": label, "rate": rate, "calls": {"jaxrobust": our_calls[attack]}}
        row["calls"].update({lib: calls[(lib, attack)] for lib in torch_run})
        same_work = [lib for lib in torch_run if row["calls"][lib] >= 0.95 * our_calls[attack]]
        row["reference"] = max(same_work, key=lambda lib: rate[lib])
        row["ratio"] = rate["jaxrobust"] / rate[row["reference"]]
        # per model call (forward + backward), for libraries that stop early
        per_call = {k: rate[k] * row["calls"][k] for k in rate}
        row["per_call_ratio"] = {lib: per_call["jaxrobust"] / per_call[lib] for lib in torch_run}
        rows.append(row)
        print(row, flush=True)
    meta = {
        "stamp": run_stamp(extra=("torchattacks",)),
        "device": describe_devices(),
        "images": args.images,
        "twin_rel_diff": twin,
        "repeats": args.repeats,
        "batch": args.batch,
        "threads": threads,
        "compile_s": compile_s,
    }
    text = markdown(rows, meta)
    print(text)
    if args.output:
        write_section(args.output, BEGIN, END, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
