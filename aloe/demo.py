r"""The whole pipeline on generated data: one command from nothing to answers.

  python -m aloe.demo --workdir=workdirs/demo [--config=configs/demo.py]

Stages, each skipped when its output already exists (an interrupted demo
resumes where it stopped; MONet and ALOE training resume from checkpoints):

1. generate mini-CLEVRER videos, annotations and questions (`aloe.synthetic.clevrer`);
2. build the `clevrer` tfds dataset of 64x64 frames (`aloe.data.clevrer`);
3. pretrain MONet on single frames (`configs/monet_small.py`);
4. extract the MONet latents of every frame into a latent store (`aloe.extract`);
5. train ALOE with the auxiliary loss on the latents (`configs/clevrer.py`, demo sizes);
6. write the ground-truth object states of the same videos (`aloe.data.object_states`);
7. train the same ALOE on them (only the token width differs: 18 state dims, not 16);
8. evaluate both on the validation split and print, per question type, the ALOE on
   MONet latents, the ALOE on object states and the answer prior (each type's most
   common training answer) side by side: what is lost in perception, and what the
   reasoner does with perfect perception.

Everything lives under `--workdir`: `mini_clevrer/`, `tfds/`, `monet/`,
`latents/`, `aloe/`, `object_states/`, `aloe_object_states/`; the table is
written to `demo_results.json`.
"""

import copy
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

if TYPE_CHECKING:  # Imported when run: JAX and orbax load slowly, and --help needs neither.
    from aloe import checkpointing

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "Demo config.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Everything the demo writes.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 2, "Split the CPU into this many JAX devices, each with its share of every "
    "batch (aloe.parallel.split_cpu: MONet trains about 10% faster so on 2 cores); "
    "0 keeps JAX's default of one. Every stage's batches divide by 2.", lower_bound=0)
_LOG_LIBRARIES = flags.DEFINE_bool("log_libraries", False,
                                   "Also show the libraries' INFO lines (orbax, tfds, clu).")


STAGES = 8
METRICS = ("descriptive", "explanatory_per_option", "predictive_per_option",
           "counterfactual_per_option", "explanatory_per_question", "predictive_per_question",
           "counterfactual_per_question")
ROWS = ("monet_latents", "object_states", "answer_prior")


def _banner(number: int, title: str) -> float:
    print(f"\n=== Stage {number}/{STAGES}: {title} ===", flush=True)
    return time.time()


def _done(start: float, what: str) -> None:
    print(f"--- {what} ({time.time() - start:.0f} s)", flush=True)


def train_to_end(config: ml_collections.ConfigDict, workdir: str, what: str,
                 preemption: "checkpointing.PreemptionFlag | None" = None):
    """`aloe.train.train`, exiting the demo when it stopped on a signal before the end.

    A stopped run has saved a checkpoint; the stages after it must not run on a
    half-trained model (their outputs would be kept and skipped on the next run).
    The exit status is `checkpointing.STOPPED_EXIT_STATUS`, as `aloe.main`'s.
    """
    from aloe import checkpointing  # pylint: disable=g-import-not-at-top
    from aloe import train  # pylint: disable=g-import-not-at-top
    state = train.train(config, workdir, preemption)
    if int(state.step) < config.train.steps:
        print(f"{what} stopped at step {int(state.step)} of {config.train.steps}; run the "
              "same command again to resume.", flush=True)
        sys.exit(checkpointing.STOPPED_EXIT_STATUS)
    return state


def answer_prior_baselines(questions_dir: str) -> dict[str, float]:
    """Validation accuracy of answering by the training answers' prior (`aloe.answer_prior`)."""
    from aloe import answer_prior  # pylint: disable=g-import-not-at-top
    return answer_prior.clevrer_prior(os.path.join(questions_dir, "train.json"),
                                      os.path.join(questions_dir, "validation.json"))


def object_states_config(aloe: ml_collections.ConfigDict,
                         root: str) -> ml_collections.ConfigDict:
    """`aloe` on the object-state store at `root`: only the token width differs."""
    from aloe.data import object_states  # pylint: disable=g-import-not-at-top
    states = copy.deepcopy(aloe)
    states.data.root = root
    states.model.latent_dim = object_states.CLEVRER_LAYOUT.dim
    return states


def results_table(rows: dict[str, dict[str, float]]) -> str:
    """Validation accuracy per question type, one column per row of `ROWS`."""
    widths = [max(len(name), 6) for name in ROWS]
    lines = ["Accuracy on the validation split:",
             f"  {'':>28}  " + "  ".join(f"{n:>{w}}" for n, w in zip(ROWS, widths))]
    for metric in METRICS:
        if any(metric in rows[name] for name in ROWS):
            lines.append(f"  {metric:>28}  " + "  ".join(
                f"{rows[name].get(metric, float('nan')):>{w}.3f}"
                for name, w in zip(ROWS, widths)))
    return "\n".join(lines)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, dict[str, float]]:
    """Runs (or resumes) every stage; returns the evaluation rows (`ROWS`) by metric."""
    import jax  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from aloe import evaluate  # pylint: disable=g-import-not-at-top
    from aloe import extract  # pylint: disable=g-import-not-at-top
    from aloe.data import clevrer  # pylint: disable=g-import-not-at-top
    from aloe.data import object_states  # pylint: disable=g-import-not-at-top
    from aloe.data import state_layout  # pylint: disable=g-import-not-at-top
    from aloe.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    from aloe.synthetic import clevrer as clevrer_gen  # pylint: disable=g-import-not-at-top

    paths = {name: os.path.join(workdir, name)
             for name in ("mini_clevrer", "tfds", "monet", "latents", "aloe", "object_states",
                          "aloe_object_states")}
    g = config.generate
    start = _banner(1, f"generate mini-CLEVRER ({g.num_videos} videos at {g.width}x{g.height})")
    marker = os.path.join(paths["mini_clevrer"], "generated.json")
    if os.path.exists(marker):
        print("already generated")
    else:
        report = clevrer_gen.generate_clevrer(paths["mini_clevrer"], g.num_videos, g.seed,
                                              width=g.width, height=g.height, workers=g.workers)
        with open(marker, "w", encoding="utf-8") as f:
            json.dump(report, f, default=str)
    _done(start, "videos, annotations and questions")

    start = _banner(2, "build the tfds dataset of 64x64 frames")
    builder = clevrer.Clevrer(data_dir=paths["tfds"])
    if builder.is_prepared():
        print("already built")
    else:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=paths["mini_clevrer"]))
    _done(start, "tfds dataset")

    monet = config.monet
    monet.data.data_dir = paths["tfds"]
    monet.data.masks_dir = os.path.join(paths["mini_clevrer"], "masks")
    monet.extract.out = paths["latents"]
    monet.extract.questions_dir = os.path.join(paths["mini_clevrer"], "questions")
    start = _banner(3, f"pretrain MONet ({monet.train.steps} steps of {monet.train.batch_size} "
                       f"frames)")
    state = train_to_end(monet, paths["monet"], "MONet")
    monet_results = evaluate.evaluate(monet, paths["monet"], params=state.params,
                                      step=int(state.step), split="valid")
    r, nan = monet_results, float("nan")
    _done(start, f"MONet: foreground ARI {r.get('fg_ari', nan):.3f} (one slot for "
                 f"everything: {r.get('fg_ari_one_slot', nan):.3f}; difference "
                 f"{r.get('fg_ari_gain', nan):.3f} ± {r.get('fg_ari_gain_stderr', nan):.3f}, "
                 f"standard error over videos); on the {r.get('multi_object_frames', 0)} "
                 f"frames with several objects {r.get('fg_ari_multi_object', nan):.3f} "
                 "(one slot: 0)")

    start = _banner(4, "extract the latents of every frame")
    written = extract.extract(monet, paths["monet"])
    _done(start, f"latent files written: {written}")

    aloe = config.aloe
    aloe.data.root = paths["latents"]
    vocab_file = os.path.join(paths["latents"], "vocab.json")
    if not os.path.exists(vocab_file):  # The generator speaks the release vocabulary.
        vocab_lib.release_vocab().save(vocab_file)
    start = _banner(5, f"train ALOE with the auxiliary loss ({aloe.train.steps} steps)")
    state = train_to_end(aloe, paths["aloe"], "ALOE on MONet latents")
    _done(start, "ALOE on MONet latents")

    start = _banner(6, "write the ground-truth object states of the same videos")
    states = object_states_config(aloe, paths["object_states"])
    if os.path.exists(os.path.join(paths["object_states"], state_layout.METADATA_FILE)):
        print("already written")
    else:
        written = object_states.write_clevrer(
            os.path.join(paths["mini_clevrer"], "annotations"), monet.extract.questions_dir,
            paths["object_states"], num_slots=states.data.num_slots)
        print(f"object-state files written: {written}")
    _done(start, "object states")

    start = _banner(7, f"train the same ALOE on the object states ({states.train.steps} "
                       "steps)")
    states_state = train_to_end(states, paths["aloe_object_states"], "ALOE on object states")
    _done(start, "ALOE on object states")

    start = _banner(8, "evaluate both on the validation split")
    rows = {
        "monet_latents": evaluate.evaluate(aloe, paths["aloe"], params=state.params,
                                           step=int(state.step)),
        "object_states": evaluate.evaluate(states, paths["aloe_object_states"],
                                           params=states_state.params,
                                           step=int(states_state.step)),
        "answer_prior": answer_prior_baselines(monet.extract.questions_dir),
    }
    print("\n" + results_table(rows))
    path = os.path.join(workdir, "demo_results.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "monet": monet_results}, f, indent=1, default=str)
    os.replace(path + ".tmp", path)
    _done(start, f"results in {path}")
    del jax
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)  # The train loops' progress lines.
    from aloe import reporting  # pylint: disable=g-import-not-at-top
    reporting.configure_logging(show_libraries=_LOG_LIBRARIES.value)
    from aloe import parallel  # pylint: disable=g-import-not-at-top
    parallel.split_cpu(_CPU_DEVICES.value)
    run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
