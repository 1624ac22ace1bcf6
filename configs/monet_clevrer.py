r"""MONet pretraining on CLEVRER frames with the paper's settings (Burgess et al. 2019).

  python -m aloe.data.clevrer --manual_dir=$CLEVRER --data_dir=$TFDS_DATA
  python -m aloe.main --config=configs/monet_clevrer.py --workdir=$MONET \
      --config.data.data_dir=$TFDS_DATA
  python -m aloe.main --config=configs/monet_clevrer.py --workdir=$MONET --mode=extract \
      --config.data.data_dir=$TFDS_DATA --config.extract.out=$LATENTS \
      --config.extract.questions_dir=$CLEVRER/questions

K = 8 slots, d = 16, RMSProp 1e-4, batch 64 single 64x64 frames shuffled across
videos. MONet trains for long (~1M steps on CLEVR-like data); the latents of
every frame are then extracted once into the latent store ALOE trains on
(`configs/clevrer.py`, `data.root = $LATENTS`).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """The paper configuration for CLEVRER."""
    config = ml_collections.ConfigDict()
    config.task = "monet"            # Which task (aloe.tasks.build).
    config.seed = 0                  # Seeds parameters, frame order and posterior samples.

    config.data = ml_collections.ConfigDict()
    config.data.dataset = "clevrer"  # tfds name ("clevrer", "cater/all_actions", ...).
    config.data.data_dir = ""        # tfds data directory the dataset was built in; required.
    config.data.train_split = "train"
    config.data.masks_dir = ""       # Generator instance masks ({root}/masks) for the ARI.
    config.data.frames_root = ""     # The training frame store (aloe.data.frame_store); empty:
                                     # {data_dir}/frame_store/{dataset}, written on first use.

    config.model = ml_collections.ConfigDict()
    config.model.num_slots = 8       # K; slot 0 is the background.
    config.model.latent_dim = 16     # d, the object embedding size ALOE reads.
    config.model.image_size = 64
    config.model.unet_channels = (32, 32, 64, 64, 64)
    config.model.unet_mlp_hidden = (128, 128)
    config.model.encoder_channels = (32, 32, 64, 64)
    config.model.encoder_hidden = 256
    config.model.decoder_channels = (32, 32, 32, 32)
    config.model.sigma_bg = 0.09     # Pixel std of the background slot.
    config.model.sigma_fg = 0.11     # Pixel std of the other slots.
    config.model.beta = 0.5          # Latent KL weight.
    config.model.gamma = 0.5         # Mask KL weight.
    config.model.dtype = "auto"      # Compute dtype: float32 on CPU, bfloat16 on GPU / TPU.

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "rmsprop"
    config.optimizer.learning_rate = 1e-4
    config.optimizer.warmup_steps = 0
    config.optimizer.schedule = "constant"
    config.optimizer.weight_decay = 0.0
    config.optimizer.grad_clip_norm = 0.0

    config.train = ml_collections.ConfigDict()
    config.train.steps = 1_000_000
    config.train.batch_size = 64     # Global frames per step.
    config.train.microbatches = 1        # Parts each device's batch is computed in
                                         # (aloe.gradients; faster on CPU for MONet).
    config.train.log_every = 100
    config.train.checkpoint_every = 5000
    config.train.eval_every = 5000   # Validation (losses, ARI, pictures) to TensorBoard; 0 = off.
    config.train.eval_batches = 0    # Batches of eval.* frames it uses; 0 = all of them.
    config.train.keep_checkpoints = 3
    config.train.init_from = ""     # Workdir whose newest parameters start a new run.

    config.eval = ml_collections.ConfigDict()
    config.eval.split = "valid"       # The tfds split 'validation'; files eval_valid_{step}.json.
    config.eval.num_videos = 16      # Videos evaluated (from the start of the split).
    config.eval.frames_per_video = 8  # Evenly spaced frames per evaluated video.
    config.eval.batch_size = 64
    config.eval.after_training = True
    config.eval.tag = ""  # Names the result files eval_{split}_{step}_{tag}.json when set.

    # --mode=extract: latents of every frame of every video (aloe/extract.py).
    config.extract = ml_collections.ConfigDict()
    config.extract.out = ""          # Latent store root to write; required.
    config.extract.splits = "train:train,validation:valid"  # tfds split:store split.
    config.extract.questions_dir = ""  # CLEVRER questions/ folder, copied beside the latents.
    config.extract.batch_size = 128  # Frames encoded per call (over all local devices).
    return config
