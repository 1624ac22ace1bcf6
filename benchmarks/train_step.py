"""Training-step throughput of ALOE in the paper's CLEVRER configuration.

One step = forward + backward + `optax.lamb` update on 4 descriptive questions
(softmax cross-entropy) and 4 multiple-choice questions x 4 choices (sigmoid
cross-entropy per choice), each over 25 frames x 8 slots with 20 question and 12
choice words: 20 sequences of 1 + 20 + 12 + 200 = 233 tokens, run through the
transformer in one pass (`ALOE.descriptive_and_multiple_choice`).

Printed (not asserted): the median step time after warm-up, sequences/s, the
model's matmul FLOPs per step, this machine's dense float32 matmul peak measured
in the same run, and, last, `fraction_of_matmul_peak=<number>`. With
`--with_torch` a PyTorch `nn.TransformerEncoder` of the same width, heads,
layers, feed-forward size, dropout and pre-LayerNorm is timed on the same
sequences (AdamW step) and the throughput ratio is printed as
`aloe_over_torch=<number>` just before it. `--cpu_devices N` splits the CPU into
N JAX devices and every sub-batch among them (`aloe.parallel.split_cpu`).

FLOPs are counted analytically from the matmuls only (2*m*n*k each): per layer
and sequence of N tokens at width W with feed-forward M, q/k/v/output
projections 8*N*W^2, content and position logits and the weighted values
3 * 2*N^2*W, feed-forward 4*N*W*M; once per layer (shared by the batch) the
relative-key projection 2*N*W^2; plus the token projection and the heads. The
backward pass is counted as twice the forward. Element-wise work (softmax,
LayerNorm, dropout, the optimizer) is not counted.

Full run (about 2-4 minutes on 2 cores):
  python benchmarks/train_step.py [--with_torch]
Smoke run:
  python benchmarks/train_step.py --layers 2 --steps 3 --warmup 1

On a shared machine the wall-clock figures drop with other load; the ratio of
the step's matmul FLOPs per process-CPU second to the dot's is printed as a
figure that other load affects much less.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aloe import parallel
from aloe.models import factory
from aloe.models import precision

VOCAB_SIZE = 82
NUM_ANSWERS = 21


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags (defaults: the paper's CLEVRER configuration)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--heads", type=int, default=10)
    parser.add_argument("--latent_dim", type=int, default=16)
    parser.add_argument("--mlp_dim", type=int, default=1024)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--descriptive_batch", type=int, default=4)
    parser.add_argument("--mc_batch", type=int, default=4)
    parser.add_argument("--choices", type=int, default=4)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--question_len", type=int, default=20)
    parser.add_argument("--choice_len", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
    parser.add_argument("--with_torch", action="store_true",
                        help="also time a PyTorch nn.TransformerEncoder of the same shape")
    parser.add_argument("--dtype", default="auto", choices=precision.DTYPE_NAMES,
                        help="ALOE's compute dtype (auto: float32 on CPU, bfloat16 elsewhere)")
    parser.add_argument("--cpu_devices", type=int, default=0,
                        help="split the CPU into this many JAX devices and every sub-batch "
                             "among them (aloe.parallel.split_cpu; 0: JAX's default, one)")
    return parser.parse_args(argv)


def make_batch(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Random inputs of the benchmark's shapes (padding at the end of each word list)."""
    rng = np.random.default_rng(0)

    def words(*shape):
        ids = rng.integers(1, VOCAB_SIZE, size=shape).astype(np.int32)
        lengths = rng.integers(shape[-1] // 2, shape[-1] + 1, size=shape[:-1])
        ids[np.arange(shape[-1]) >= lengths[..., None]] = 0
        return ids

    def latents(batch):
        return rng.normal(size=(batch, args.frames, args.slots, args.latent_dim)).astype(
            np.float32)

    db, mb = args.descriptive_batch, args.mc_batch
    return {
        "desc_latents": latents(db), "desc_question": words(db, args.question_len),
        "desc_answer": rng.integers(0, NUM_ANSWERS, size=db).astype(np.int32),
        "mc_latents": latents(mb), "mc_question": words(mb, args.question_len),
        "mc_choices": words(mb, args.choices, args.choice_len),
        "mc_labels": rng.integers(0, 2, size=(mb, args.choices)).astype(np.float32),
    }


def model_flops(args: argparse.Namespace) -> tuple[float, int, int]:
    """(matmul FLOPs of one training step, sequences per step, tokens per sequence)."""
    width = args.heads * (args.latent_dim + 2)
    tokens = 1 + args.question_len + args.choice_len + args.frames * args.slots
    sequences = args.descriptive_batch + args.mc_batch * args.choices
    per_layer = 8 * tokens * width**2 + 6 * tokens**2 * width + 4 * tokens * width * args.mlp_dim
    forward = sequences * (args.layers * per_layer
                           + 2 * tokens * (args.latent_dim + 2) * width
                           + 2 * width * 128)
    forward += args.layers * 2 * tokens * width**2  # relative keys, once per layer
    forward += 2 * args.descriptive_batch * 128 * NUM_ANSWERS + 2 * args.mc_batch * args.choices * 128
    return 3.0 * forward, sequences, tokens


def measure_matmul_peak(size: int = 4096, repeats: int = 6) -> tuple[float, float]:
    """Best FLOP/s of a `[size, size] @ [size, size]` float32 jnp.dot: per wall
    second, and per second of process CPU time (all threads)."""
    a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu_start)
    return 2.0 * size**3 / best, 2.0 * size**3 / best_cpu


def time_aloe(args: argparse.Namespace) -> tuple[list[float], list[float], float]:
    """Wall and process-CPU times (s) of the timed steps, and compile-plus-first-step time."""
    model = factory.build_aloe(vocab_size=VOCAB_SIZE, num_answers=NUM_ANSWERS,
                               latent_dim=args.latent_dim, num_heads=args.heads,
                               num_layers=args.layers, mlp_dim=args.mlp_dim,
                               dropout_rate=args.dropout, descriptive_choice_len=args.choice_len,
                               dtype=precision.compute_dtype(args.dtype))
    batch = jax.tree.map(jnp.asarray, make_batch(args))
    params = jax.jit(lambda key: model.init(
        {"params": key}, batch["mc_latents"][:1], batch["mc_question"][:1],
        batch["mc_choices"][:1], deterministic=True)["params"])(jax.random.key(0))
    # Every sub-batch split among the devices, the parameters whole on each.
    mesh = parallel.make_mesh()
    batch = jax.device_put(batch, jax.sharding.NamedSharding(mesh, parallel.SHARDED))
    params = parallel.replicate(params, mesh)
    tx = optax.lamb(2e-3)

    def loss_fn(params, batch, rng):
        """Descriptive softmax CE + per-choice sigmoid CE, with dropout."""
        desc_logits, mc_logits = model.apply(
            {"params": params}, batch["desc_latents"], batch["desc_question"],
            batch["mc_latents"], batch["mc_question"], batch["mc_choices"],
            deterministic=False, rngs={"dropout": rng},
            method=model.descriptive_and_multiple_choice)
        desc_loss = optax.softmax_cross_entropy_with_integer_labels(
            desc_logits, batch["desc_answer"]).mean()
        mc_loss = optax.sigmoid_binary_cross_entropy(mc_logits, batch["mc_labels"]).mean()
        return desc_loss + mc_loss

    @jax.jit
    def train_step(params, opt_state, batch, step):
        """Forward, backward and a LAMB update."""
        rng = jax.random.fold_in(jax.random.key(0), step)
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, rng)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = tx.init(params)
    start = time.perf_counter()
    params, opt_state, loss = train_step(params, opt_state, batch, 0)
    loss.block_until_ready()
    first = time.perf_counter() - start
    times, cpu_times = [], []
    for step in range(1, 1 + args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        params, opt_state, loss = train_step(params, opt_state, batch, step)
        loss.block_until_ready()
        if step > args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    if not np.isfinite(float(loss)):
        raise FloatingPointError(f"The benchmark's loss is not finite: {float(loss)}.")
    return times, cpu_times, first


def time_torch(args: argparse.Namespace, sequences: int, tokens: int) -> list[float]:
    """Step times (s) of a PyTorch pre-LN TransformerEncoder of the same shape (AdamW)."""
    import torch  # pylint: disable=g-import-not-at-top

    torch.manual_seed(0)
    width = args.heads * (args.latent_dim + 2)
    layer = torch.nn.TransformerEncoderLayer(
        d_model=width, nhead=args.heads, dim_feedforward=args.mlp_dim, dropout=args.dropout,
        activation="relu", batch_first=True, norm_first=True)
    encoder = torch.nn.TransformerEncoder(layer, num_layers=args.layers,
                                          enable_nested_tensor=False)
    encoder.train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=2e-3)
    inputs = torch.randn(sequences, tokens, width)
    targets = torch.randn(sequences, width)
    times = []
    for step in range(1 + args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(encoder(inputs)[:, 0], targets)
        loss.backward()
        optimizer.step()
        if step > args.warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Runs the benchmark and prints its figures."""
    args = parse_args()
    parallel.split_cpu(args.cpu_devices)
    flops, sequences, tokens = model_flops(args)
    print(f"config: layers={args.layers} heads={args.heads} "
          f"width={args.heads * (args.latent_dim + 2)} mlp={args.mlp_dim} "
          f"dropout={args.dropout} sequences/step={sequences} tokens/sequence={tokens} "
          f"dtype={jnp.dtype(precision.compute_dtype(args.dtype)).name} devices={jax.devices()}")
    peak, cpu_peak = measure_matmul_peak()
    times, cpu_times, first = time_aloe(args)
    step = statistics.median(times)
    print(f"aloe: compile+first step {first:.1f} s; step times "
          + " ".join(f"{t:.3f}" for t in times))
    print("aloe: process CPU seconds per step (all threads) "
          + " ".join(f"{t:.3f}" for t in cpu_times))
    print(f"aloe: median step {step:.3f} s, {sequences / step:.2f} sequences/s")
    print(f"model matmul FLOPs per step: {flops / 1e9:.1f} GFLOP "
          f"(analytic 2*m*n*k, backward = 2x forward); achieved {flops / step / 1e9:.1f} GFLOP/s")
    # Measured before and after the model (before torch, whose idle threads spin).
    peak_after, cpu_peak_after = measure_matmul_peak()
    peak, cpu_peak = max(peak, peak_after), max(cpu_peak, cpu_peak_after)
    cpu_step = statistics.median(cpu_times)
    print(f"measured matmul FLOPs per process-CPU second: {cpu_peak / 1e9:.1f} G; the step's: "
          f"{flops / cpu_step / 1e9:.1f} G, ratio {flops / cpu_step / cpu_peak:.3f} "
          f"(robust to other load on the machine)")
    if args.with_torch:
        torch_times = time_torch(args, sequences, tokens)
        torch_step = statistics.median(torch_times)
        print("torch: step times " + " ".join(f"{t:.3f}" for t in torch_times))
        print(f"torch: median step {torch_step:.3f} s, {sequences / torch_step:.2f} sequences/s")
    print(f"measured float32 matmul peak (4096^3 jnp.dot, best of 2x6): {peak / 1e9:.1f} GFLOP/s")
    if args.with_torch:
        print(f"aloe_over_torch={torch_step / step:.3f}")
    print(f"fraction_of_matmul_peak={flops / step / peak:.3f}")


if __name__ == "__main__":
    main()
