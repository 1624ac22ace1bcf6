"""The six masking schemes of the paper's Figure 2 for the self-supervised loss.

Mask convention (used by every function here, by the model and by `aloe.losses`)
-------------------------------------------------------------------------------
Each scheme returns a `Masks` pair `(m, tau)` of bool arrays `[frames, slots]`:

* `m[t, k]` True: the object token is *visible context*; the model sees the true
  latent `mu[t, k]`.
* `m[t, k]` False: the token is *hidden*; its latent is replaced by the model's
  learned mask embedding.
* `tau[t, k]` True: the token is a *target*; the auxiliary loss is computed there.

`m` and `tau` are never both True (a visible token is never scored). A token with
neither is hidden but not scored: the *buffer* of schemes (c)-(f), and the
non-target objects of the object-target schemes.

The schemes (paper Section 2.1 and Figure 2)
--------------------------------------------
(a) `one_object_per_frame`: in every frame exactly one random slot is hidden and
    scored; all other slots are visible.
(b) `random_objects`: every token is hidden independently with probability
    `mask_prob`, and `tau = not m`. (The paper fixes the expected proportion of
    visible tokens; that proportion is `1 - mask_prob`.)
(c) `object_prediction`, (d) `scene_prediction`: frames are split at a random
    point into `context | buffer | targets | rest`. Context frames are fully visible;
    all later frames are fully hidden. The `target_frames` frames right after the
    `buffer` frames are scored: `objects_per_frame` random slots of each (c), or
    every slot (d). Frames after the target window ("rest") are hidden and not
    scored, so the context is strictly before the targets.
(e) `object_infilling`, (f) `scene_infilling`: frames are split at a random point
    into `context | buffer | targets | buffer | context`; both context stretches are
    visible, everything between them hidden, and the target frames scored as in
    (c) and (d).

Where the paper leaves a choice open, this module decides as follows:
* Target frames of the object schemes (c, e) are hidden entirely (not only their
  scored objects), so an object target is never predicted from the other objects
  of its own frame.
* Frames after the target window in (c, d) are hidden and unscored rather than
  scored, so the number of targets is the same for every draw.
* Every context stretch has at least `min_context_frames` frames (default 1), and
  the first context frame count is uniform over all valid values. Setting
  `min_context_frames = frames - buffer - target_frames` in (c, d) gives the fixed
  layout of the paper's Appendix C (the last frames are the targets).
* Defaults (`mask_prob=0.15`, `buffer=3`, `target_frames=3`, `objects_per_frame=1`)
  are ours except the 3-frame buffer, which Appendix C uses; the paper gives none
  of the others.

All functions are pure: randomness comes only from the key, `frames`, `slots` and
the keyword parameters are static Python values, and the result has a static shape.
They work under `jax.jit` (with the sizes bound, e.g. by `functools.partial`) and
under `jax.vmap` over keys; `make_batch_masks` does the latter for a batch.
"""

import inspect
import operator
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class Masks(NamedTuple):
    """The visibility and target masks of one masking draw.

    Attributes:
      m: bool `[..., frames, slots]`, True = visible context (the true latent is shown).
      tau: bool `[..., frames, slots]`, True = target (the loss is computed there).
    """
    m: jax.Array
    tau: jax.Array


def _static_size(value: int, name: str, minimum: int) -> int:
    """`value` as a Python int >= `minimum`, or a clear error."""
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a static Python int (bind it with functools.partial "
                        f"or static_argnums under jit), got {value!r}.") from None
    if size < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {size}.")
    return size


def _random_slots(rng: jax.Array, frames: int, slots: int, count: int) -> jax.Array:
    """bool `[frames, slots]` with exactly `count` distinct random slots True per frame."""
    scores = jax.random.uniform(rng, (frames, slots))
    ranks = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)
    return ranks < count


def _frame_roles(rng: jax.Array, frames: int, buffer: int, target_frames: int,
                 min_context_frames: int, infill: bool) -> tuple[jax.Array, jax.Array]:
    """Per-frame roles of a prediction or infilling draw.

    Returns:
      (context, target): bool `[frames]`; context frames are visible, target frames
      scored, all others hidden.
    """
    hidden = buffer + target_frames + (buffer if infill else 0)
    context_needed = min_context_frames * (2 if infill else 1)
    if hidden + context_needed > frames:
        layout = ("context | buffer | targets | buffer | context" if infill
                  else "context | buffer | targets")
        raise ValueError(
            f"{layout} does not fit in {frames} frames: buffer={buffer}, "
            f"target_frames={target_frames} and min_context_frames={min_context_frames} "
            f"need {hidden + context_needed}.")
    # Length of the (first) context stretch, uniform over the valid values.
    max_start = frames - hidden - (min_context_frames if infill else 0)
    start = jax.random.randint(rng, (), min_context_frames, max_start + 1)
    t = jnp.arange(frames)
    target_begin = start + buffer
    target_end = target_begin + target_frames
    target = (t >= target_begin) & (t < target_end)
    context = t < start
    if infill:
        context = context | (t >= target_end + buffer)
    return context, target


def one_object_per_frame(rng: jax.Array, frames: int, slots: int) -> Masks:
    """Scheme (a): exactly one random slot per frame is hidden and scored.

    Args:
      rng: a JAX random key.
      frames: number of frames T (static).
      slots: number of object slots K (static).

    Returns:
      `Masks` of bool `[frames, slots]`; each frame has one token with `tau` True
      and `m` False, and all its other tokens visible.
    """
    frames = _static_size(frames, "frames", 1)
    slots = _static_size(slots, "slots", 1)
    tau = _random_slots(rng, frames, slots, 1)
    return Masks(m=~tau, tau=tau)


def random_objects(rng: jax.Array, frames: int, slots: int, *,
                   mask_prob: float = 0.15) -> Masks:
    """Scheme (b): each token is hidden and scored independently with `mask_prob`.

    Args:
      rng: a JAX random key.
      frames: number of frames T (static).
      slots: number of object slots K (static).
      mask_prob: probability that a token is hidden, in (0, 1); the expected
        proportion of visible tokens is `1 - mask_prob`.

    Returns:
      `Masks` of bool `[frames, slots]` with `tau == ~m`. A draw may hide no token
      at all (probability `(1 - mask_prob) ** (frames * slots)`).
    """
    frames = _static_size(frames, "frames", 1)
    slots = _static_size(slots, "slots", 1)
    if not 0.0 < float(mask_prob) < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}.")
    tau = jax.random.bernoulli(rng, float(mask_prob), (frames, slots))
    return Masks(m=~tau, tau=tau)


def _temporal_scheme(rng: jax.Array, frames: int, slots: int, buffer: int, target_frames: int,
                     min_context_frames: int, objects_per_frame: int | None,
                     infill: bool) -> Masks:
    """Schemes (c)-(f); `objects_per_frame` None means scene targets (all slots)."""
    frames = _static_size(frames, "frames", 1)
    slots = _static_size(slots, "slots", 1)
    buffer = _static_size(buffer, "buffer", 0)
    target_frames = _static_size(target_frames, "target_frames", 1)
    min_context_frames = _static_size(min_context_frames, "min_context_frames", 1)
    roles_rng, slots_rng = jax.random.split(rng)
    context, target = _frame_roles(roles_rng, frames, buffer, target_frames,
                                   min_context_frames, infill)
    m = jnp.broadcast_to(context[:, None], (frames, slots))
    tau = jnp.broadcast_to(target[:, None], (frames, slots))
    if objects_per_frame is not None:
        count = _static_size(objects_per_frame, "objects_per_frame", 1)
        if count > slots:
            raise ValueError(f"objects_per_frame={count} is more than the {slots} slots.")
        tau = tau & _random_slots(slots_rng, frames, slots, count)
    return Masks(m=m, tau=tau)


def object_prediction(rng: jax.Array, frames: int, slots: int, *, buffer: int = 3,
                      target_frames: int = 3, objects_per_frame: int = 1,
                      min_context_frames: int = 1) -> Masks:
    """Scheme (c): predict random objects of frames that follow a hidden buffer.

    Frames are `context | buffer | targets | rest` with a random context length
    (at least `min_context_frames`). Context frames are visible; all later frames
    are hidden. In each target frame `objects_per_frame` distinct random slots are
    scored.

    Args:
      rng: a JAX random key.
      frames: number of frames T (static).
      slots: number of object slots K (static).
      buffer: hidden, unscored frames between the context and the targets (>= 0).
      target_frames: number of target frames (>= 1).
      objects_per_frame: scored slots per target frame, 1..slots.
      min_context_frames: fewest visible context frames (>= 1).

    Returns:
      `Masks` of bool `[frames, slots]`.

    Raises:
      ValueError: if `min_context_frames + buffer + target_frames > frames`, or a
        size is out of range.
    """
    return _temporal_scheme(rng, frames, slots, buffer, target_frames, min_context_frames,
                            objects_per_frame, infill=False)


def scene_prediction(rng: jax.Array, frames: int, slots: int, *, buffer: int = 3,
                     target_frames: int = 3, min_context_frames: int = 1) -> Masks:
    """Scheme (d): predict whole frames that follow a hidden buffer.

    As `object_prediction`, but every slot of the `target_frames` target frames is
    scored.

    Args:
      rng: a JAX random key.
      frames: number of frames T (static).
      slots: number of object slots K (static).
      buffer: hidden, unscored frames between the context and the targets (>= 0).
      target_frames: number of target frames (>= 1).
      min_context_frames: fewest visible context frames (>= 1).

    Returns:
      `Masks` of bool `[frames, slots]`.

    Raises:
      ValueError: if `min_context_frames + buffer + target_frames > frames`, or a
        size is out of range.
    """
    return _temporal_scheme(rng, frames, slots, buffer, target_frames, min_context_frames,
                            None, infill=False)


def object_infilling(rng: jax.Array, frames: int, slots: int, *, buffer: int = 3,
                     target_frames: int = 3, objects_per_frame: int = 1,
                     min_context_frames: int = 1) -> Masks:
    """Scheme (e): infill random objects of frames between two hidden buffers.

    Frames are `context | buffer | targets | buffer | context` with a random
    position (each context stretch has at least `min_context_frames` frames). Both
    context stretches are visible, everything between them hidden; in each target
    frame `objects_per_frame` distinct random slots are scored.

    Args:
      rng: a JAX random key.
      frames: number of frames T (static).
      slots: number of object slots K (static).
      buffer: hidden, unscored frames on each side of the targets (>= 0).
      target_frames: number of target frames (>= 1).
      objects_per_frame: scored slots per target frame, 1..slots.
      min_context_frames: fewest visible frames on each side (>= 1).

    Returns:
      `Masks` of bool `[frames, slots]`.

    Raises:
      ValueError: if `2 * (min_context_frames + buffer) + target_frames > frames`, or
        a size is out of range.
    """
    return _temporal_scheme(rng, frames, slots, buffer, target_frames, min_context_frames,
                            objects_per_frame, infill=True)


def scene_infilling(rng: jax.Array, frames: int, slots: int, *, buffer: int = 3,
                    target_frames: int = 3, min_context_frames: int = 1) -> Masks:
    """Scheme (f): infill whole frames between two hidden buffers.

    As `object_infilling`, but every slot of the target frames is scored.

    Args:
      rng: a JAX random key.
      frames: number of frames T (static).
      slots: number of object slots K (static).
      buffer: hidden, unscored frames on each side of the targets (>= 0).
      target_frames: number of target frames (>= 1).
      min_context_frames: fewest visible frames on each side (>= 1).

    Returns:
      `Masks` of bool `[frames, slots]`.

    Raises:
      ValueError: if `2 * (min_context_frames + buffer) + target_frames > frames`, or
        a size is out of range.
    """
    return _temporal_scheme(rng, frames, slots, buffer, target_frames, min_context_frames,
                            None, infill=True)


MaskScheme = Callable[..., Masks]

# Descriptive name -> scheme; `SCHEME_LETTERS` maps the letters of Figure 2.
SCHEMES: dict[str, MaskScheme] = {
    "one_object_per_frame": one_object_per_frame,
    "random_objects": random_objects,
    "object_prediction": object_prediction,
    "scene_prediction": scene_prediction,
    "object_infilling": object_infilling,
    "scene_infilling": scene_infilling,
}
SCHEME_LETTERS: dict[str, str] = dict(zip("abcdef", SCHEMES))


def get_scheme(scheme: str) -> MaskScheme:
    """The scheme function named by a letter 'a'..'f' or a descriptive name.

    Raises:
      ValueError: for an unknown name.
    """
    key = str(scheme).strip().lower()
    name = SCHEME_LETTERS.get(key, key)
    if name not in SCHEMES:
        known = ", ".join(f"{letter!r}/{full!r}" for letter, full in SCHEME_LETTERS.items())
        raise ValueError(f"unknown masking scheme {scheme!r}; known: {known}.")
    return SCHEMES[name]


def scheme_parameters(scheme: str) -> tuple[str, ...]:
    """The keyword parameters a scheme accepts (e.g. `('mask_prob',)` for 'b')."""
    signature = inspect.signature(get_scheme(scheme))
    return tuple(name for name, p in signature.parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY)


def parameter_types() -> dict[str, type]:
    """Every keyword parameter of any scheme and the type of its default, e.g. `buffer: int`."""
    types = {}
    for function in SCHEMES.values():
        for name, p in inspect.signature(function).parameters.items():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                types[name] = type(p.default)
    return types


def make_masks(scheme: str, rng: jax.Array, frames: int, slots: int, **params) -> Masks:
    """Draws the masks of one example with the scheme named `scheme`.

    Args:
      scheme: 'a'..'f' or a descriptive name (see `SCHEMES`), case-insensitive.
      rng: a JAX random key.
      frames: number of frames T (static).
      slots: number of object slots K (static).
      **params: the scheme's keyword parameters (`scheme_parameters(scheme)`).

    Returns:
      `Masks(m, tau)`, bool `[frames, slots]`; see the module docstring.

    Raises:
      ValueError: for an unknown scheme, a parameter the scheme does not take, or
        sizes that do not fit (e.g. buffer + targets longer than the frames).
    """
    function = get_scheme(scheme)
    accepted = scheme_parameters(scheme)
    unexpected = sorted(set(params) - set(accepted))
    if unexpected:
        raise ValueError(f"masking scheme {scheme!r} ({function.__name__}) does not take "
                         f"{unexpected}; it takes {list(accepted)}.")
    return function(rng, frames, slots, **params)


def make_batch_masks(scheme: str, rng: jax.Array, batch_size: int, frames: int, slots: int,
                     **params) -> Masks:
    """Draws independent masks for `batch_size` examples.

    Args:
      scheme: as in `make_masks`.
      rng: a JAX random key, split into one key per example.
      batch_size: number of examples B (static).
      frames: number of frames T (static).
      slots: number of object slots K (static).
      **params: the scheme's keyword parameters.

    Returns:
      `Masks(m, tau)`, bool `[batch_size, frames, slots]`.
    """
    batch_size = _static_size(batch_size, "batch_size", 1)
    keys = jax.random.split(rng, batch_size)
    return jax.vmap(lambda key: make_masks(scheme, key, frames, slots, **params))(keys)
