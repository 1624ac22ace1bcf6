"""Models built from a config: `config.model` and its `reasoner` and `entities` sub-configs.

`config.model` holds the sizes every part reads, meaning the same thing whatever
the reasoner: `latent_dim` (d; tokens are d + 2 wide), `num_heads` (the width
the heads read is `num_heads * (d + 2)`), `num_layers` (transformer blocks; the
hierarchical reasoner splits them, `reasoners.hierarchical_layers`), `mlp_dim`
(feed-forward hidden size), `dropout_rate`, `initialization`, `dtype` (the
compute dtype of a reasoner that has one, `aloe.models.precision`), and the head and
token options of `ALOE` / `ALOECater`. Two sub-configs pick the parts:

- `reasoner`: `name` (a key of `REASONERS`) and that reasoner's own fields
  (those of its module that are not shared sizes), e.g.
  `{"name": "mlp", "hidden_dim": 2048, "hidden_layers": 4}`;
- `entities`: `name` (a key of `ENTITY_ENCODERS`) and that encoder's own
  fields, e.g. `{"name": "resnet", "widths": (32, 64, 128, 128), ...}`.

A field a part does not have is an error naming it and the part's fields, so a
config carries only the fields of the parts it uses. Omitted fields take the
module's defaults.
"""

import dataclasses
from typing import Any, Mapping, Optional

import flax.linen as nn

from aloe.models import aloe as aloe_lib
from aloe.models import entities as entities_lib
from aloe.models import reasoners as reasoners_lib

REASONERS = {
    "transformer": reasoners_lib.RelativeTransformerReasoner,
    "hierarchical": reasoners_lib.HierarchicalTransformerReasoner,
    "mlp": reasoners_lib.MLPTokenReasoner,
}
ENTITY_ENCODERS = {
    "latents": entities_lib.LatentEntities,
    "resnet": entities_lib.ResNetHyperpixels,
}
# The sizes every reasoner reads from `config.model` (not from its sub-config).
SHARED_SIZES = ("latent_dim", "num_heads", "num_layers", "mlp_dim", "dropout_rate",
                "initialization", "dtype")
# Fields a part gets from the model, never from its sub-config.
_DERIVED = {"parent", "name", "latent_dim", "head_dim", "output_dim", "num_heads",
            "num_layers", "mlp_dim", "dropout_rate", "initialization", "dtype"}


def own_fields(module_class: type[nn.Module]) -> tuple[str, ...]:
    """The fields of a part that its sub-config may set."""
    return tuple(f.name for f in dataclasses.fields(module_class)
                 if f.name not in _DERIVED and f.init)


def _as_dict(spec: Optional[Mapping[str, Any]], default: str) -> dict[str, Any]:
    if spec is None:
        return {"name": default}
    spec = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
    spec.setdefault("name", default)
    return spec


def _part(spec: dict[str, Any], registry: Mapping[str, type], where: str) -> tuple[type, dict]:
    """The class named by `spec['name']` and the rest of `spec`, checked against its fields."""
    name = spec.pop("name")
    if name not in registry:
        raise ValueError(f"{where}.name must be one of {tuple(registry)}, got {name!r}.")
    module_class = registry[name]
    fields = own_fields(module_class)
    unknown = sorted(set(spec) - set(fields))
    if unknown:
        raise ValueError(f"{where}: {name!r} has no field {', '.join(map(repr, unknown))}; its "
                         f"fields: {', '.join(fields) or 'none'}.")
    return module_class, spec


def build_reasoner(spec: Optional[Mapping[str, Any]] = None, *, latent_dim: int, num_heads: int,
                   num_layers: int, mlp_dim: int, dropout_rate: float,
                   initialization: str = "flax", dtype: Any = None) -> reasoners_lib.Reasoner:
    """The reasoner of `config.model.reasoner` (None: the relative transformer).

    Args:
      spec: `name` and the reasoner's own fields.
      latent_dim: d; the heads are `d + 2` wide (the token width).
      num_heads, num_layers, mlp_dim, dropout_rate, initialization: the shared sizes.
      dtype: compute dtype for a reasoner that has one; None: its default.

    Raises:
      ValueError: an unknown name, a field the reasoner does not have (named), or a
        dtype for a reasoner without one.
    """
    module_class, fields = _part(_as_dict(spec, "transformer"), REASONERS,
                                 "config.model.reasoner")
    if dtype is not None:
        if "dtype" not in {f.name for f in dataclasses.fields(module_class)}:
            if dtype not in ("float32", "auto"):
                raise ValueError(f"config.model.dtype = {dtype!r}: the {module_class.kind!r} "
                                 f"reasoner computes in float32 only.")
        else:
            fields["dtype"] = dtype
    head_dim = latent_dim + 2
    if module_class is reasoners_lib.MLPTokenReasoner:
        return module_class(output_dim=num_heads * head_dim, dropout_rate=dropout_rate, **fields)
    return module_class(num_heads=num_heads, head_dim=head_dim, num_layers=num_layers,
                        mlp_dim=mlp_dim, dropout_rate=dropout_rate,
                        initialization=initialization, **fields)


def build_entity_encoder(spec: Optional[Mapping[str, Any]] = None, *,
                         latent_dim: int) -> nn.Module:
    """The entity encoder of `config.model.entities` (None: latents)."""
    module_class, fields = _part(_as_dict(spec, "latents"), ENTITY_ENCODERS,
                                 "config.model.entities")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return module_class(latent_dim=latent_dim, **fields)


def _build(model_class: type[nn.Module], defaults: dict[str, Any], fields: dict[str, Any],
           **given: Any) -> nn.Module:
    reasoner, entities = fields.pop("reasoner", None), fields.pop("entities", None)
    known = {f.name for f in dataclasses.fields(model_class)} | set(SHARED_SIZES)
    unknown = sorted(set(fields) - known - {"reasoner", "entity_encoder", "parent", "name"})
    if unknown or "entity_encoder" in fields:
        bad = unknown or ["entity_encoder"]
        raise ValueError(f"config.model has no field {', '.join(map(repr, bad))} for "
                         f"{model_class.__name__} (the reasoner's fields go in "
                         f"config.model.reasoner, the entity encoder's in config.model.entities).")
    sizes = {**defaults, **{k: fields.pop(k) for k in SHARED_SIZES if k in fields}}
    return model_class(
        reasoner=build_reasoner(reasoner, **sizes),
        entity_encoder=build_entity_encoder(entities, latent_dim=sizes["latent_dim"]),
        latent_dim=sizes["latent_dim"], initialization=sizes["initialization"], **fields,
        **given)


def build_aloe(*, vocab_size: int, num_answers: int, auxiliary: bool = False,
               **model_config: Any) -> aloe_lib.ALOE:
    """ALOE (CLEVRER) from the fields of `config.model`.

    Defaults are the paper's sizes with Flax's initialisers (14,975,632 parameters
    with a vocabulary of 82 and 21 answers). Usage:
    `build_aloe(vocab_size=82, num_answers=21, **config.model)`.
    """
    defaults = dict(latent_dim=16, num_heads=10, num_layers=28, mlp_dim=1024, dropout_rate=0.1,
                    initialization="flax", dtype=None)
    return _build(aloe_lib.ALOE, defaults, dict(model_config), vocab_size=vocab_size,
                  num_answers=num_answers, auxiliary=auxiliary)


def build_aloe_cater(*, num_classes: int = 36, auxiliary: bool = False,
                     **model_config: Any) -> aloe_lib.ALOECater:
    """ALOE for CATER from the fields of `config.model` (defaults: the paper's Table 4b)."""
    defaults = dict(latent_dim=36, num_heads=8, num_layers=16, mlp_dim=1024, dropout_rate=0.1,
                    initialization="flax", dtype=None)
    return _build(aloe_lib.ALOECater, defaults, dict(model_config), num_classes=num_classes,
                  auxiliary=auxiliary)
