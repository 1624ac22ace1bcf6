"""The encoding shared by every object-state store: a fixed layout of fields and slots.

A `Layout` says where each field of an object's state vector sits (real-valued
fields first, then the in-view flag, then one-hot properties); `arrange_slots`
puts a scene's encoded objects into slots (kept per object, or permuted in every
frame), blanks the unseen ones and adds noise; `write_metadata` records the layout
and the writing options beside a store. `aloe.data.object_states` (CLEVRER) and
`aloe.data.cater_object_states` (CATER) build on it.
"""

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from aloe.data import latents as latents_lib

SLOT_ORDERS = ("identity", "per_frame")
METADATA_FILE = "object_states.json"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The fixed order of an object-state vector.

    Attributes:
      continuous: `(name, width, scale)` of the real-valued fields, first in order.
      categorical: `(name, values)` of the one-hot fields, after the in-view flag.
    """
    continuous: tuple[tuple[str, int, float], ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    def slices(self) -> dict[str, slice]:
        """Field name -> its dims; `in_view` sits between the two groups."""
        result, start = {}, 0
        fields = ([(name, width) for name, width, _ in self.continuous] + [("in_view", 1)]
                  + [(name, len(values)) for name, values in self.categorical])
        for name, width in fields:
            result[name] = slice(start, start + width)
            start += width
        return result

    @property
    def dim(self) -> int:
        """The latent size d."""
        return list(self.slices().values())[-1].stop

    def to_json(self) -> dict[str, Any]:
        """The layout as `object_states.json` records it (dims per field)."""
        scales = {name: scale for name, _, scale in self.continuous}
        values = dict(self.categorical)
        return {"dim": self.dim, "fields": [
            {"name": name, "start": s.start, "stop": s.stop,
             **({"scale": scales[name]} if name in scales else {}),
             **({"values": list(values[name])} if name in values else {})}
            for name, s in self.slices().items()]}

    def encode(self, continuous: Mapping[str, Sequence[float]],
               categorical: Mapping[str, str], source: str) -> np.ndarray:
        """float32 `[d]` of one visible object; unknown values raise naming `source`."""
        vector = np.zeros(self.dim, np.float32)
        slices = self.slices()
        for name, width, scale in self.continuous:
            value = np.asarray(continuous[name], np.float64)[:width]
            vector[slices[name]] = value * scale
        vector[slices["in_view"]] = 1.0
        for name, values in self.categorical:
            if categorical[name] not in values:
                raise ValueError(f"{source}: field '{name}' has value {categorical[name]!r}; "
                                 f"expected one of {values}.")
            vector[slices[name].start + values.index(categorical[name])] = 1.0
        return vector

    def decode(self, vector: np.ndarray) -> dict[str, Any] | None:
        """The object in one slot `[d]` (values rounded back), or None for an empty slot."""
        slices = self.slices()
        if vector[slices["in_view"]][0] < 0.5:
            return None
        result: dict[str, Any] = {name: vector[slices[name]] / scale
                                  for name, _, scale in self.continuous}
        for name, values in self.categorical:
            result[name] = values[int(np.argmax(vector[slices[name]]))]
        return result


def arrange_slots(objects: np.ndarray, visible: np.ndarray, num_slots: int, slot_order: str,
                  noise: float, rng: np.random.Generator, source: str) -> np.ndarray:
    """Places encoded objects into slots, blanks unseen ones, adds noise.

    Args:
      objects: float32 `[frames, n, d]`, object j's encoding in every frame.
      visible: bool `[frames, n]`, whether object j is in view.
      num_slots: K >= n.
      slot_order: "identity" (object j in slot j) or "per_frame" (a random
        permutation of the K slots per frame).
      noise: standard deviation of the Gaussian noise on occupied slots.
      rng: draws the permutations and the noise.
      source: names the scene in errors.

    Returns:
      float32 `[frames, K, d]`.
    """
    frames, count, dim = objects.shape
    if count > num_slots:
        raise ValueError(f"{source}: {count} objects do not fit in num_slots = {num_slots}.")
    if slot_order not in SLOT_ORDERS:
        raise ValueError(f"slot_order must be one of {SLOT_ORDERS}, got {slot_order!r}.")
    padded = np.zeros((frames, num_slots, dim), np.float32)
    padded[:, :count] = np.where(visible[..., None], objects, 0.0)
    occupied = np.zeros((frames, num_slots), bool)
    occupied[:, :count] = visible
    if slot_order == "per_frame":
        order = np.argsort(rng.random((frames, num_slots)), axis=1)
        padded = np.take_along_axis(padded, order[..., None], axis=1)
        occupied = np.take_along_axis(occupied, order, axis=1)
    if noise > 0:
        padded += np.where(occupied[..., None],
                           rng.normal(0.0, noise, padded.shape), 0.0).astype(np.float32)
    return padded


def write_metadata(out: str, layout: Layout, options: Mapping[str, Any]) -> None:
    """Writes `{out}/object_states.json`: the layout and the writing options."""
    content = {"layout": layout.to_json(), **options}
    latents_lib.write_atomically(os.path.join(out, METADATA_FILE),
                                 json.dumps(content, indent=1).encode("utf-8"))
