"""Heads: what reads the reasoner's outputs.

`Head` is `Dense(hidden_dim) - ReLU - Dense(leading_logits + num_outputs)`, the
answer heads of `ALOE` (descriptive, choice) and the grid head of `ALOECater`.
A model shares its scope with its heads (`flax.linen.share_scope`), so their
layers are named `{prefix}_hidden` and `{prefix}_output` at the model's top
level, the release's names (`aloe.release`).
"""

import flax.linen as nn
import jax

from aloe.models import tokens


class Head(nn.Module):
    """A two-layer head with ReLU; the first `leading_logits` outputs are computed and dropped.

    The release's descriptive head has 22 outputs for its answer ids 1..21:
    `leading_logits=1` keeps that shape while the returned logits are the last
    `num_outputs`, so the unused logit takes no part in a softmax or loss.

    Attributes:
      prefix: name prefix of the two layers (`{prefix}_hidden`, `{prefix}_output`).
      hidden_dim: hidden units.
      num_outputs: logits returned.
      leading_logits: unused outputs in front of them.
      initialization: "flax" or "release" (`tokens.MODEL_INITS`).
    """
    prefix: str
    hidden_dim: int
    num_outputs: int
    leading_logits: int = 0
    initialization: str = "flax"

    def setup(self):
        """Declares the two layers."""
        if self.leading_logits < 0:
            raise ValueError(f"leading_logits (answer_logit_offset) must be >= 0, "
                             f"got {self.leading_logits}.")
        init = tokens.model_init(self.initialization)
        self.hidden = nn.Dense(self.hidden_dim, kernel_init=init.head,
                               name=f"{self.prefix}_hidden")
        self.output = nn.Dense(self.leading_logits + self.num_outputs, kernel_init=init.head,
                               name=f"{self.prefix}_output")

    def __call__(self, x: jax.Array) -> jax.Array:
        """x `[..., width]` -> logits `[..., num_outputs]`."""
        return self.output(nn.relu(self.hidden(x)))[..., self.leading_logits:]
