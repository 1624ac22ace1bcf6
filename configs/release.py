r"""The released ALOE CLEVRER model (DeepMind), otherwise the paper's hyperparameters (Table 4a).

The model is exactly the one of DeepMind's release (`object_attention_for_reasoning`
in `deepmind-research`): 28 blocks of 10 heads of 18, a bias on the attention
output projection, LayerNorm epsilon 1e-5, a 22-way answer head (answer ids
1..21, logit 0 unused), the `[d + 2]` mask vector, no padding mask (padding
words are attended to, as in the release), the release's dropouts and
initialisers: 14,980,819 parameters. Training settings are those of
`configs/clevrer.py` (the paper's).

Convert the released TF1 checkpoint into a workdir, then evaluate it on the
released latents (release layout, see README "The released model"):

  python -m aloe.release --checkpoint=clevrer_monet_latents/checkpoints/model.ckpt \
      --workdir=$WORKDIR
  python -m aloe.main --config=configs/release.py --workdir=$WORKDIR --mode=eval \
      --config.data.root=clevrer_monet_latents

Fine-tune from it (fresh optimizer, step 0):

  python -m aloe.main --config=configs/release.py --workdir=$NEW \
      --config.train.init_from=$WORKDIR --config.data.root=clevrer_monet_latents

The converted checkpoint carries no latent prediction f of the auxiliary loss
(the release has none); `aloe.release` initialises it as training would.
"""

import ml_collections

from configs import clevrer
from configs import parts


def get_config() -> ml_collections.ConfigDict:
    """The paper configuration with the released model."""
    config = clevrer.get_config()
    config.model.word_padding_mask = False  # The release attends to padding words.
    # The rest of the model already follows the release in configs/clevrer.py; pinned
    # here so that this config stays the release's whatever the paper config becomes.
    config.model.latent_dim = 16
    config.model.num_heads = 10
    config.model.num_layers = 28
    config.model.mlp_dim = 1024
    config.model.head_hidden_dim = 128
    config.model.dropout_rate = 0.1
    config.model.initialization = "release"
    config.model.answer_logit_offset = 1
    config.model.full_token_mask = True
    config.model.entities = parts.latents()
    # The relative transformer with the release's options: a bias after attention, Sonnet's
    # LayerNorm epsilon, and dropout_rate for its three further dropouts (None).
    config.model.reasoner = parts.reasoner("transformer")
    config.data.num_frames = 25
    config.data.num_slots = 8
    config.data.max_question_len = 20   # The release's MAX_QUESTION_LENGTH.
    config.data.max_choice_len = 12     # MAX_CHOICE_LENGTH.
    config.data.max_choices = 4         # NUM_CHOICES.
    return config
