"""One command that checks a machine: device, matmul peaks, ALOE and MONet speed, learning.

Prints, on the default JAX backend:

1. the device (platform, kind, count);
2. its measured dense matmul peaks in float32 and bfloat16 (best of a few
   `[n, n] @ [n, n]` jnp.dot calls);
3. the ALOE training step of `benchmarks/train_step.py` (the paper's CLEVRER
   configuration, 20 sequences of 233 tokens, LAMB) in float32 and in
   bfloat16 compute: median step time, sequences/s and the fraction of the
   same dtype's matmul peak;
4. MONet at the paper's size (`benchmarks/monet.py`'s programs, compute dtype
   "auto"): training-step and extraction frames/s;
5. a short end-to-end training of ALOE (the training system of `aloe.train`
   with `configs/toy.py`'s model) on generated toy latents, and a learning
   check: the loss of the first training batches under the trained parameters
   must be below 0.8 of their loss under the initial ones.

On one GPU it is meant to finish in under 8 minutes. `--tiny` shrinks every
size (and the matmul to 1024) so that it runs in a few minutes on a CPU, as a
test of the script itself, not of the machine:

  python benchmarks/accelerator.py          # an accelerator
  python benchmarks/accelerator.py --tiny   # a smoke run anywhere
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from aloe import tasks
from aloe import train
from aloe.models import monet as monet_lib
from aloe.models import precision
from aloe.synthetic import toy_latents
from benchmarks import monet as monet_bench
from benchmarks import train_step as aloe_bench
from configs import toy as toy_config


def parse_args() -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run on CPU)")
    parser.add_argument("--train_steps", type=int, default=None,
                        help="end-to-end training steps (default 600, tiny 60)")
    parser.add_argument("--workdir", default=None, help="where the toy data and run go "
                        "(default: a temporary folder, removed afterwards)")
    return parser.parse_args()


def matmul_peak(size: int, dtype: jnp.dtype, repeats: int = 5) -> float:
    """Best FLOP/s of a `[size, size] @ [size, size]` jnp.dot in `dtype`."""
    a = jax.random.normal(jax.random.key(1), (size, size), dtype)
    b = jax.random.normal(jax.random.key(2), (size, size), dtype)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def aloe_steps(tiny: bool, peaks: dict[str, float]) -> None:
    """Times ALOE's training step in float32 and bfloat16 compute."""
    args = aloe_bench.parse_args([])
    args.steps, args.warmup = (2, 1) if tiny else (5, 2)
    if tiny:
        args.layers, args.mlp_dim, args.frames = 2, 128, 4
    flops, sequences, tokens = aloe_bench.model_flops(args)
    print(f"aloe: layers={args.layers} width={args.heads * (args.latent_dim + 2)} "
          f"sequences/step={sequences} tokens/sequence={tokens}, "
          f"{flops / 1e9:.1f} GFLOP/step (matmuls)")
    for dtype in ("float32", "bfloat16"):
        args.dtype = dtype
        times, _, first = aloe_bench.time_aloe(args)
        step = statistics.median(times)
        print(f"aloe {dtype}: compile+first step {first:.1f} s; median step {step * 1e3:.1f} ms, "
              f"{sequences / step:.1f} sequences/s, {flops / step / 1e12:.2f} TFLOP/s, "
              f"fraction of the {dtype} matmul peak {flops / step / peaks[dtype]:.3f}")


def monet_throughput(tiny: bool) -> None:
    """MONet training-step and extraction frames/s at the paper's size (compute dtype auto)."""
    dtype = precision.compute_dtype("auto")
    if tiny:
        model = monet_lib.MONet(num_slots=3, latent_dim=4, image_size=16, unet_channels=(8, 8, 8),
                                unet_mlp_hidden=(32,), encoder_channels=(8, 8, 8, 8),
                                encoder_hidden=32, decoder_channels=(8, 8), dtype=dtype)
        batch, steps = 2, 2
    else:
        model, batch, steps = monet_lib.MONet(dtype=dtype), 64, 5
    size = model.image_size
    images = jnp.asarray(np.random.default_rng(0).uniform(
        size=(batch, size, size, 3)).astype(np.float32))
    params = jax.jit(lambda key: model.init({"params": key}, images[:1], deterministic=True))(
        jax.random.key(0))["params"]
    tx = optax.rmsprop(1e-4)
    state = {"params": params, "opt_state": tx.init(params)}
    step_fn, compile_time = monet_bench.compile_timed(
        monet_bench.make_train_step(model, tx), params, state["opt_state"], images, 0)

    def run(i):
        state["params"], state["opt_state"], loss = step_fn(state["params"], state["opt_state"],
                                                            images, i)
        return loss

    times, _, loss = monet_bench.time_calls(run, 1, steps)
    if not np.isfinite(float(loss)):
        raise FloatingPointError(f"MONet's loss is not finite: {float(loss)}.")
    step = statistics.median(times)
    print(f"monet {jnp.dtype(dtype).name}: batch {batch}, compile {compile_time:.1f} s; median "
          f"train step {step * 1e3:.1f} ms, {batch / step:.1f} frames/s")
    extract, compile_time = monet_bench.compile_timed(monet_bench.make_extract(model),
                                                      state["params"], images)
    times, _, _ = monet_bench.time_calls(lambda i: extract(state["params"], images), 1, steps)
    call = statistics.median(times)
    print(f"monet extraction: compile {compile_time:.1f} s; median call {call * 1e3:.1f} ms, "
          f"{batch / call:.1f} frames/s")


def end_to_end(workdir: str, tiny: bool, steps: int) -> bool:
    """Toy latents -> ALOE training -> the learning check; returns whether it passed."""
    root = os.path.join(workdir, "toy")
    toy_latents.write_toy_dataset(root, num_train=64 if tiny else 600,
                                  num_valid=8 if tiny else 60, seed=0)
    config = toy_config.get_config()
    config.data.root = root
    config.train.steps = steps
    config.train.log_every = max(1, steps // 4)
    config.train.checkpoint_every = steps
    config.train.eval_every = 10 * steps  # No validation during the run.
    config.optimizer.warmup_steps = min(config.optimizer.warmup_steps, steps // 4)
    if tiny:
        config.model.num_layers, config.model.mlp_dim = 2, 64
        config.train.descriptive_batch = config.train.mc_batch = 8
    start = time.perf_counter()
    state = train.train(config, os.path.join(workdir, "run"))
    seconds = time.perf_counter() - start
    task = tasks.build(config, process_index=0, process_count=1)
    initial = train.init_state(task, train.make_optimizer(config.optimizer, steps), config.seed)
    final_params = jax.device_get(state.params)
    loss = jax.jit(lambda p, b: task.loss(p, b, jax.random.key(0))[0])
    batches = [task.train_batch(i) for i in range(4)]
    before = float(np.mean([loss(initial.params, b) for b in batches]))
    after = float(np.mean([loss(final_params, b) for b in batches]))
    passed = after < 0.8 * before
    print(f"end-to-end: {steps} steps in {seconds:.1f} s (with compiling); loss of the first "
          f"4 training batches {before:.3f} -> {after:.3f}: learning check "
          f"{'passed' if passed else 'FAILED'} (needs < 0.8 x)")
    return passed


def main() -> None:
    """Runs every check and prints its figures; exits with status 1 if learning fails."""
    args = parse_args()
    start = time.perf_counter()
    devices = jax.devices()
    print(f"device: {jax.default_backend()} x{len(devices)}: {devices[0].device_kind}; "
          f"compute dtype 'auto' = {jnp.dtype(precision.compute_dtype('auto')).name}")
    size = 1024 if args.tiny else (8192 if jax.default_backend() != "cpu" else 4096)
    peaks = {name: matmul_peak(size, jnp.dtype(name)) for name in ("float32", "bfloat16")}
    for name, peak in peaks.items():
        print(f"matmul peak {name} ({size}^3 jnp.dot): {peak / 1e12:.2f} TFLOP/s")
    aloe_steps(args.tiny, peaks)
    monet_throughput(args.tiny)
    steps = args.train_steps or (60 if args.tiny else 600)
    if args.workdir:
        passed = end_to_end(args.workdir, args.tiny, steps)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            passed = end_to_end(workdir, args.tiny, steps)
    print(f"total {time.perf_counter() - start:.0f} s")
    if not passed:
        sys.exit(1)


if __name__ == "__main__":
    main()
