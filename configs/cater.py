r"""ALOE on CATER snitch localization with the paper's hyperparameters (Ding et al. 2021, Table 4b).

  python -m aloe.main --config=configs/cater.py --workdir=$WORKDIR \
      --config.data.root=/path/to/cater_latents

`data.root` holds MONet latents of both CATER variants (`all_actions`, static
camera, and `all_actions_cameramotion`, moving camera) in the layout of
`aloe.data.cater_latents`: `train_labels.json`, `valid_labels.json` and
`{train,valid}/{name}.npy` arrays of `[301, 8, 36]`. 60k steps of batch 8 (4
static + 4 moving); the paper reports top-1 / top-5 / L1 of 74.0 / 94.0 / 0.44
(static) and 59.7 / 90.1 / 0.69 (moving) with the L1 loss and the auxiliary
self-supervised loss (λ = 2.0, on an unsupervised sub-batch).

The argument picks a Table 1 part (configs/parts.py): `configs/cater.py:mlp`
(without the auxiliary loss: the MLP has no object outputs), `:hierarchical`,
or `:resnet` (frames of a frame store at `data.frames_root`).
"""

import ml_collections

from aloe.tasks import auxiliary
from configs import parts


def get_config(arg: str = "transformer") -> ml_collections.ConfigDict:
    """The paper configuration; the argument picks another part (`with_part`)."""
    config = ml_collections.ConfigDict()
    config.task = "cater"            # Which task (aloe.tasks.build).
    config.seed = 0                  # Seeds parameters, batches, dropout and augmentation.

    config.data = ml_collections.ConfigDict()
    config.data.root = ""            # Latent store root (aloe.data.cater_latents); required.
    config.data.train_split = "train"  # Reads {root}/train_labels.json and {root}/train/.
    config.data.num_frames = 80      # Frames per video: sorted random in training, spread
                                     # evenly over all 301 (ends included) in evaluation.
    config.data.num_slots = 8        # MONet slots per frame.
    config.data.labeled_fraction = 1.0   # Share of videos whose labels train (Figure 3).
    config.data.labeled_seed = 0         # Which videos are labelled at a fraction < 1.
    # Frames, for a model that reads them (`:resnet`): a frame store (python -m
    # aloe.data.frame_store) of frame_size x frame_size frames, in place of data.root.
    config.data.frames_root = ""
    config.data.frame_size = 64

    config.model = ml_collections.ConfigDict()
    config.model.latent_dim = 36     # MONet latent size d; tokens are d + 2 wide.
    config.model.num_heads = 8       # Model width = num_heads * (d + 2) = 304.
    config.model.num_layers = 16     # Transformer blocks.
    config.model.mlp_dim = 1024      # Feed-forward hidden size.
    config.model.head_hidden_dim = 144  # Hidden size of the 36-way grid head.
    config.model.dropout_rate = 0.1  # Transformer dropout.
    config.model.dtype = "auto"      # Compute dtype: float32 on CPU, bfloat16 on GPU / TPU.
    config.model.entities = parts.latents()  # MONet latents of data.root.
    config.model.reasoner = parts.reasoner("transformer", release=False)

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "lamb"   # "lamb", "adam" or "rmsprop".
    config.optimizer.learning_rate = 2e-3
    config.optimizer.warmup_steps = 4000   # Linear warmup from 0.
    config.optimizer.schedule = "constant"  # After warmup: "constant" or "cosine".
    config.optimizer.weight_decay = 0.0
    config.optimizer.grad_clip_norm = 0.0   # 0 = no clipping.

    config.train = ml_collections.ConfigDict()
    config.train.steps = 60_000      # The paper's steps to converge.
    config.train.static_batch = 4    # Global static-camera videos per step.
    config.train.moving_batch = 4    # Global moving-camera videos per step.
    config.train.microbatches = 1    # Parts each device's batch is computed in (aloe.gradients).
    config.train.l1_loss_weight = 1.0  # Weight of the expected-L1 loss ("Ours (with L1
                                       # loss)"); the paper does not give it; 0 = CE only.
    config.train.permute_slots = True  # Random slot order per video (training only).
    config.train.log_every = 100     # Steps between console / TensorBoard lines.
    config.train.checkpoint_every = 5000  # Steps between checkpoints.
    config.train.eval_every = 5000   # Validation on eval.split to TensorBoard (0 = off).
    config.train.eval_batches = 20   # Its first batches (a fixed subset); 0 = whole split.
    config.train.keep_checkpoints = 3  # Checkpoints kept on disk.
    config.train.init_from = ""     # Workdir whose newest parameters start a new run.

    # Self-supervised auxiliary loss (aloe/tasks/auxiliary.py): the paper's λ = 2.0
    # for CATER, L2 on one hidden object per frame, an unsupervised sub-batch of 8.
    config.auxiliary = auxiliary.defaults()
    config.auxiliary.weight = 2.0
    config.auxiliary.batch = 8

    config.eval = ml_collections.ConfigDict()
    config.eval.split = "valid"      # Reads {root}/valid_labels.json and {root}/valid/.
    config.eval.batch_size = 64      # Global videos per evaluation batch.
    config.eval.after_training = True  # --mode=train evaluates the final parameters.
    config.eval.tag = ""  # Names the result files eval_{split}_{step}_{tag}.json when set.
    return with_part(config, arg, "paper")


def with_part(config: ml_collections.ConfigDict, part: str,
              size: str) -> ml_collections.ConfigDict:
    """`config` with reasoner `part` ("transformer", "mlp", "hierarchical") or, for
    "resnet", the ResNet encoder on frames (`data.frames_root`), at `size`."""
    if part == "resnet":
        parts.use_resnet(config, size)
    else:
        parts.use_reasoner(config, part, size, release=False)
    return config
