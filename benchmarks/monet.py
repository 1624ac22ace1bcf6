"""Throughput of MONet at the paper's size: training steps and latent extraction.

The model is `aloe.models.monet.MONet` with K = 8 slots, d = 16, 64x64 images
and the U-Net / VAE sizes of Burgess et al. (2019). Two jitted programs are timed
on random images:

- training step: forward (sampled z), `monet_loss`, backward and an
  `optax.rmsprop(1e-4)` update, on `--batch` frames;
- extraction: `MONet.encode` only (attention network + encoder, no decoder), as
  used to cache latents, on `--batch` frames.

Each program is lowered and compiled explicitly (compile time printed apart),
so every executed call runs at full speed. Printed (not asserted): median times,
frames/s, FLOPs per call, achieved FLOP/s, this machine's dense float32 matmul
peak measured in the same run (`measure_matmul_peak` of
`benchmarks/train_step.py`, a 4096^3 jnp.dot), the process-CPU-time ratio (less
affected by other load on a shared machine), and, last,
`fraction_of_matmul_peak=<number>` for the training step. With `--with_torch` a
PyTorch MONet of the same sizes (`benchmarks/torch_monet.py`, channels-last)
is timed on the same number of frames in the same run, and the throughput
ratio is printed as `aloe_over_torch=<number>` just before it. `--cpu_devices N`
splits the CPU into N JAX devices and the batch among them, as `aloe.main
--cpu_devices` does in training;
`--microbatches K` computes each device's gradient in K equal parts, as
`train.microbatches` does (small parts keep the activations in cache).

FLOPs are XLA's count (`jax.jit(f).lower(...).cost_analysis()["flops"]`, the
program before optimisation): convolutions and matmuls as 2 per multiply-add
(padding excluded), plus element-wise work. The programs have no loops (the
attention recursion is unrolled), so nothing is counted once for many runs.
The count is always that of the float32 model with XLA's convolutions (the
"xla" formulation), so that every formulation and dtype is credited with the
same work.

Full run (a few minutes on 2 otherwise idle cores; longer when the machine is shared):
  python benchmarks/monet.py [--with_torch] [--cpu_devices 2] [--microbatches 4]
Smoke run:
  python benchmarks/monet.py --batch 4 --steps 1 --extract_steps 1
"""

import argparse
import os
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aloe import gradients
from aloe import parallel
from aloe.models import conv
from aloe.models import monet
from aloe.models import precision

try:
    from benchmarks.train_step import measure_matmul_peak
except ImportError:  # Run as a script: this directory is on sys.path instead.
    from train_step import measure_matmul_peak  # pylint: disable=g-import-not-at-top


def parse_args() -> argparse.Namespace:
    """Command-line flags (defaults: the paper's MONet at batch 64)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="frames per call")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--latent_dim", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed training steps before the timed ones (compiling is "
                             "done and timed separately)")
    parser.add_argument("--extract_steps", type=int, default=5, help="timed extraction calls")
    parser.add_argument("--dtype", default="auto", choices=precision.DTYPE_NAMES,
                        help="compute dtype (auto: per backend)")
    parser.add_argument("--conv_formulation", default=monet.MONet.conv_formulation,
                        choices=conv.FORMULATIONS)
    parser.add_argument("--cpu_devices", type=int, default=0,
                        help="split the CPU into this many JAX devices and the batch among "
                             "them (aloe.parallel.split_cpu; 0: JAX's default, one)")
    parser.add_argument("--microbatches", type=int, default=1,
                        help="compute each device's gradient in this many equal parts "
                             "(aloe.gradients, train.microbatches)")
    parser.add_argument("--with_torch", action="store_true",
                        help="also time a PyTorch MONet of the same sizes")
    return parser.parse_args()


def make_train_step(model: monet.MONet, tx: optax.GradientTransformation,
                    microbatches: int = 1) -> Callable[..., Any]:
    """`(params, opt_state, images, step) -> (params, opt_state, loss)`, not yet jitted.

    With `microbatches` > 1 the gradient is computed in that many equal parts of
    the batch on each device (`aloe.gradients`, as `train.microbatches` does).
    """

    def loss_fn(params, images, rng):
        """The scalar MONet loss of `images` under `params` (no auxiliary outputs)."""
        outputs = model.apply({"params": params}, images, deterministic=False,
                              rngs={"sample": rng})
        return monet.monet_loss(outputs, images, **model.loss_hyperparameters)[0], ()

    grad_fn = gradients.value_and_grad_in_parts(loss_fn, microbatches)

    def per_device(params, images, rng):
        """This device's rows, in parts; the loss and gradients averaged over devices."""
        (loss, _), grads = grad_fn(params, images, rng)
        return jax.lax.pmean((loss, grads), parallel.AXIS)

    def train_step(params, opt_state, images, step):
        """Forward with sampled latents, MONet loss, backward and an RMSProp update."""
        rng = jax.random.fold_in(jax.random.key(0), step)
        if microbatches == 1:  # The whole program, partitioned over the devices by XLA.
            (loss, _), grads = grad_fn(params, images, rng)
        else:  # Parts of each device's rows, as the training system cuts them.
            loss, grads = jax.shard_map(
                per_device, mesh=parallel.make_mesh(), check_vma=False,
                in_specs=(parallel.REPLICATED, parallel.SHARDED, parallel.REPLICATED),
                out_specs=parallel.REPLICATED)(params, images, rng)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def make_extract(model: monet.MONet) -> Callable[..., Any]:
    """`(params, images) -> mu`, not yet jitted."""
    return lambda params, images: model.apply({"params": params}, images,
                                              method=monet.MONet.encode)[0]


def lowered_flops(function: Callable[..., Any], *args: Any) -> float:
    """XLA's FLOP count of the lowered (unoptimised) program of `function(*args)`."""
    costs = jax.jit(function).lower(*args).cost_analysis()
    if isinstance(costs, (list, tuple)):
        costs = costs[0]
    return float(costs["flops"])


def compile_timed(function: Callable[..., Any],
                  *args: Any) -> tuple[Callable[..., Any], float]:
    """(compiled `function` for `args`, lowering + compile seconds)."""
    start = time.perf_counter()
    compiled = jax.jit(function).lower(*args).compile()
    return compiled, time.perf_counter() - start


def time_calls(call: Callable[[int], Any], warmup: int,
               steps: int) -> tuple[list[float], list[float], Any]:
    """(wall times, process-CPU times, last result) of the timed calls of `call(i)`,
    i = 0, 1, ...: the first `warmup` calls are not timed."""
    times, cpu_times, result = [], [], None
    for i in range(warmup + steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = jax.block_until_ready(call(i))
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return times, cpu_times, result


def main() -> None:
    """Runs the benchmark and prints its figures."""
    args = parse_args()
    parallel.split_cpu(args.cpu_devices)
    model = monet.MONet(num_slots=args.slots, latent_dim=args.latent_dim,
                        image_size=args.image_size, conv_formulation=args.conv_formulation,
                        dtype=precision.compute_dtype(args.dtype))
    images = jnp.asarray(np.random.default_rng(0).uniform(
        size=(args.batch, args.image_size, args.image_size, 3)).astype(np.float32))
    params = jax.jit(lambda key: model.init({"params": key}, images[:1], deterministic=True))(
        jax.random.key(0))["params"]
    num_params = sum(leaf.size for leaf in jax.tree.leaves(params))
    print(f"config: slots={args.slots} latent_dim={args.latent_dim} image={args.image_size} "
          f"batch={args.batch} params={num_params} dtype={jnp.dtype(model.dtype).name} "
          f"conv={args.conv_formulation} microbatches={args.microbatches} "
          f"devices={jax.devices()} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    tx = optax.rmsprop(1e-4)
    state = {"params": params, "opt_state": tx.init(params)}

    peak, cpu_peak = measure_matmul_peak()

    reference = model.clone(conv_formulation="xla", dtype=jnp.float32)
    step_flops = lowered_flops(make_train_step(reference, tx), state["params"],
                               state["opt_state"], images, 0)
    extract_flops = lowered_flops(make_extract(reference), state["params"], images)
    # The batch split among the devices, everything else whole on each (data parallel).
    mesh = parallel.make_mesh()
    images = jax.device_put(images, jax.sharding.NamedSharding(mesh, parallel.SHARDED))
    state = parallel.replicate(state, mesh)
    train_step, compile_time = compile_timed(
        make_train_step(model, tx, args.microbatches), state["params"], state["opt_state"],
        images, 0)

    def run_train(i):
        """Training step `i`; updates `state` and returns the loss."""
        state["params"], state["opt_state"], loss = train_step(
            state["params"], state["opt_state"], images, i)
        return loss

    times, cpu_times, loss = time_calls(run_train, args.warmup, args.steps)
    if not np.isfinite(float(loss)):
        raise FloatingPointError(f"The benchmark's loss is not finite: {float(loss)}.")
    step = statistics.median(times)
    print(f"train: compile {compile_time:.1f} s; step times " + " ".join(f"{t:.3f}" for t in times))
    print(f"train: median step {step:.3f} s, {args.batch / step:.2f} frames/s; "
          f"{step_flops / 1e9:.1f} GFLOP/step (XLA count), {step_flops / step / 1e9:.1f} GFLOP/s")

    extract, extract_compile = compile_timed(make_extract(model), state["params"], images)
    extract_times, extract_cpu, _ = time_calls(
        lambda i: extract(state["params"], images), 1, args.extract_steps)
    extract_time = statistics.median(extract_times)
    print(f"extract: compile {extract_compile:.1f} s; call times "
          + " ".join(f"{t:.3f}" for t in extract_times))
    print(f"extract: median call {extract_time:.3f} s, {args.batch / extract_time:.1f} frames/s; "
          f"{extract_flops / 1e9:.1f} GFLOP/call (XLA count), "
          f"{extract_flops / extract_time / 1e9:.1f} GFLOP/s")

    peak_after, cpu_peak_after = measure_matmul_peak()
    peak, cpu_peak = max(peak, peak_after), max(cpu_peak, cpu_peak_after)
    cpu_step = statistics.median(cpu_times)
    extract_cpu_time = statistics.median(extract_cpu)
    step_per_cpu, extract_per_cpu = step_flops / cpu_step, extract_flops / extract_cpu_time
    print(f"measured matmul FLOPs per process-CPU second: {cpu_peak / 1e9:.1f} G; the train "
          f"step's: {step_per_cpu / 1e9:.1f} G, ratio {step_per_cpu / cpu_peak:.3f}; "
          f"extraction's: {extract_per_cpu / 1e9:.1f} G, ratio {extract_per_cpu / cpu_peak:.3f} "
          f"(robust to other load)")
    print(f"measured float32 matmul peak (4096^3 jnp.dot, best of 2x6): {peak / 1e9:.1f} GFLOP/s")
    print(f"extract: fraction of matmul peak {extract_flops / extract_time / peak:.3f}")
    if args.with_torch:
        try:
            from benchmarks import torch_monet  # pylint: disable=g-import-not-at-top
        except ImportError:
            import torch_monet  # pylint: disable=g-import-not-at-top
        torch_times = torch_monet.time_training(
            args.batch, args.steps, 1, num_slots=args.slots, latent_dim=args.latent_dim,
            image_size=args.image_size)
        torch_step = statistics.median(torch_times)
        print("torch: step times " + " ".join(f"{t:.3f}" for t in torch_times))
        print(f"torch: median step {torch_step:.3f} s, {args.batch / torch_step:.2f} frames/s")
        print(f"aloe_over_torch={torch_step / step:.3f}")
    print(f"fraction_of_matmul_peak={step_flops / step / peak:.3f}")


if __name__ == "__main__":
    main()
