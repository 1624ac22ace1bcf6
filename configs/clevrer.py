r"""ALOE on CLEVRER with the paper's hyperparameters (Ding et al. 2021, Table 4a).

  python -m aloe.main --config=configs/clevrer.py --workdir=$WORKDIR \
      --config.data.root=/path/to/clevrer_latents

`data.root` holds MONet latents in the release layout: `vocab.json`,
`train.json`, `valid.json` and `{train,valid}/{scene_index}.npz` arrays of
`[128, 8, 16]`. 200k steps; the paper reports 94.0 / 96.0 / 87.5 / 75.6
(descriptive / explanatory / predictive / counterfactual, per question) on the
validation split with the auxiliary loss. On one accelerator a step of this
configuration takes well under a second (see benchmarks/train_step.py).
"""

import ml_collections

from aloe.tasks import auxiliary
from configs import parts


def get_config() -> ml_collections.ConfigDict:
    """The paper configuration."""
    config = ml_collections.ConfigDict()
    config.task = "clevrer"          # Which task (aloe.tasks.build).
    config.seed = 0                  # Seeds parameters, batches, dropout and augmentation.

    config.data = ml_collections.ConfigDict()
    config.data.root = ""            # Latent store root (release layout); required.
    config.data.vocab = ""           # vocab.json path; "" = {root}/vocab.json, else built.
    config.data.train_split = "train"
    config.data.num_frames = 25      # Frames sampled per video (stride 128 // 25 = 5 from
                                     # frame 0 in evaluation, as the release).
    # Training frames: "random" (distinct frames drawn uniformly, sorted: what the paper
    # describes and the release's comments say) or "strided" (the evaluation stride from a
    # random start in 0..7, SlotFormer's Aloe: token distances then mean the same time
    # offsets in training and evaluation). The paper configs follow the paper.
    config.data.train_frames = "random"
    # Evaluation frames: "strided" (the release's stride from frame 0) or "spanning" (first
    # to last frame; with 12 of 128 frames the stride stops at frame 110 and hides the end).
    config.data.eval_frames = "strided"
    config.data.num_slots = 8        # MONet slots per frame.
    config.data.max_question_len = 20
    config.data.max_choice_len = 12
    config.data.max_choices = 4
    config.data.unknown_words = "error"  # "error" or "unk" (map unseen words to <unk>).
    config.data.labeled_fraction = 1.0   # Share of videos whose answers train (Figure 3).
    config.data.labeled_seed = 0         # Which videos are labelled at a fraction < 1.
    # Frames, for a model that reads them (configs/parts.py use_resnet): a frame store
    # (python -m aloe.data.frame_store) of frame_size x frame_size frames.
    config.data.frames_root = ""
    config.data.frame_size = 64

    config.model = ml_collections.ConfigDict()
    config.model.latent_dim = 16     # MONet latent size d; tokens are d + 2 wide.
    config.model.num_heads = 10      # Model width = num_heads * (d + 2) = 180.
    config.model.num_layers = 28
    config.model.mlp_dim = 1024
    config.model.head_hidden_dim = 128
    config.model.dropout_rate = 0.1  # Residual branches and feed-forward hidden units.
    config.model.dtype = "auto"      # Compute dtype: float32 on CPU, bfloat16 on GPU / TPU.
    config.model.word_padding_mask = True  # False reproduces the release (pads attended).
    config.model.initialization = "release"    # Sonnet's initialisers ("flax": Flax's).
    config.model.answer_logit_offset = 1       # 22-way head, answer ids 1..21; logit 0 unused.
    config.model.full_token_mask = True        # The release's [d + 2] mask vector.
    config.model.entities = parts.latents()    # MONet latents of data.root.
    # The relative transformer with the released model's options (configs/parts.py).
    config.model.reasoner = parts.reasoner("transformer")

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "lamb"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.warmup_steps = 4000   # Linear warmup from 0.
    config.optimizer.schedule = "constant"  # After warmup: "constant" or "cosine".
    config.optimizer.weight_decay = 0.0
    config.optimizer.grad_clip_norm = 0.0   # 0 = no clipping.

    config.train = ml_collections.ConfigDict()
    config.train.steps = 200_000
    config.train.descriptive_batch = 4   # Global descriptive sub-batch.
    config.train.mc_batch = 4            # Global multiple-choice sub-batch (questions).
    config.train.microbatches = 1        # Parts each device's batch is computed in
                                         # (aloe.gradients).
    config.train.permute_slots = True    # Random slot order per example (training only).
    config.train.log_every = 100
    config.train.checkpoint_every = 5000
    config.train.eval_every = 5000       # Validation on eval.split to TensorBoard (0 = off).
    config.train.eval_batches = 20       # Its first batches (a fixed subset); 0 = whole split.
    config.train.keep_checkpoints = 3
    config.train.init_from = ""         # Workdir whose newest parameters start a new run.

    # Self-supervised auxiliary loss: the paper's best, L2 on one hidden object per
    # frame, λ = 0.01, an unsupervised sub-batch of 8 (aloe/tasks/auxiliary.py).
    config.auxiliary = auxiliary.defaults()
    config.auxiliary.weight = 0.01
    config.auxiliary.batch = 8

    config.eval = ml_collections.ConfigDict()
    config.eval.split = "valid"
    config.eval.batch_size = 64          # Global, per sub-batch.
    config.eval.after_training = True    # --mode=train evaluates the final parameters.
    config.eval.tag = ""  # Names the result files eval_{split}_{step}_{tag}.json when set.
    config.eval.shuffle_objects = False  # True: permute the slots of every evaluation batch
                                         # (one permutation per batch, as the release does);
                                         # False keeps the evaluation deterministic.
    config.eval.clevrer_questions = ""   # Raw question file of the split (e.g. questions/
                                         # validation.json) for the difficulty split.
    config.eval.clevrer_annotations = ""  # Its annotations/{split} folder; both set: the
                                          # counterfactual difficulty split (Appendix B).
    return config
