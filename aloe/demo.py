r"""The whole pipeline on generated data: one command from nothing to answers.

  python -m aloe.demo --workdir=workdirs/demo [--config=configs/demo.py]

Stages, each skipped when its output already exists (an interrupted demo
resumes where it stopped; MONet and ALOE training resume from checkpoints):

1. generate mini-CLEVRER videos, annotations and questions (`aloe.synthetic.clevrer`);
2. build the `clevrer` tfds dataset of 64x64 frames (`aloe.data.clevrer`);
3. pretrain MONet on single frames (`configs/monet_small.py`);
4. extract the MONet latents of every frame into a latent store (`aloe.extract`);
5. train ALOE with the auxiliary loss on the latents (`configs/clevrer.py`, demo sizes);
6. evaluate on the validation split and print accuracy per question type next to
   the answer-prior baselines (each type's most common training answer).

Everything lives under `--workdir`: `mini_clevrer/`, `tfds/`, `monet/`,
`latents/`, `aloe/`.
"""

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "Demo config.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Everything the demo writes.")
_LOG_LIBRARIES = flags.DEFINE_bool("log_libraries", False,
                                   "Also show the libraries' INFO lines (orbax, tfds, clu).")


def _banner(number: int, title: str) -> float:
    print(f"\n=== Stage {number}/6: {title} ===", flush=True)
    return time.time()


def _done(start: float, what: str) -> None:
    print(f"--- {what} ({time.time() - start:.0f} s)", flush=True)


def answer_prior_baselines(questions_dir: str) -> dict[str, float]:
    """Validation accuracy of answering by the training answers' prior (`aloe.answer_prior`)."""
    from aloe import answer_prior  # pylint: disable=g-import-not-at-top
    return answer_prior.clevrer_prior(os.path.join(questions_dir, "train.json"),
                                      os.path.join(questions_dir, "validation.json"))


def run(config, workdir: str) -> dict:
    """Runs (or resumes) every stage; returns the final evaluation metrics."""
    import jax  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from aloe import evaluate  # pylint: disable=g-import-not-at-top
    from aloe import extract  # pylint: disable=g-import-not-at-top
    from aloe import train  # pylint: disable=g-import-not-at-top
    from aloe.data import clevrer  # pylint: disable=g-import-not-at-top
    from aloe.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    from aloe.synthetic import clevrer as clevrer_gen  # pylint: disable=g-import-not-at-top

    paths = {name: os.path.join(workdir, name)
             for name in ("mini_clevrer", "tfds", "monet", "latents", "aloe")}
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
    state = train.train(monet, paths["monet"])
    results = evaluate.evaluate(monet, paths["monet"], params=state.params,
                                step=int(state.step), split="valid")
    nan = float("nan")
    _done(start, f"MONet: foreground ARI {results.get('fg_ari', nan):.3f} (one slot for "
                 f"everything: {results.get('fg_ari_one_slot', nan):.3f}; difference "
                 f"{results.get('fg_ari_gain', nan):.3f} ± "
                 f"{results.get('fg_ari_gain_stderr', nan):.3f}, standard error over "
                 f"videos); on the {results.get('multi_object_frames', 0)} frames with "
                 f"several objects {results.get('fg_ari_multi_object', nan):.3f} (one slot: 0)")

    start = _banner(4, "extract the latents of every frame")
    written = extract.extract(monet, paths["monet"])
    _done(start, f"latent files written: {written}")

    aloe = config.aloe
    aloe.data.root = paths["latents"]
    vocab_file = os.path.join(paths["latents"], "vocab.json")
    if not os.path.exists(vocab_file):  # The generator speaks the release vocabulary.
        vocab_lib.release_vocab().save(vocab_file)
    start = _banner(5, f"train ALOE with the auxiliary loss ({aloe.train.steps} steps)")
    state = train.train(aloe, paths["aloe"])
    _done(start, "ALOE")

    start = _banner(6, "evaluate on the validation split")
    results = evaluate.evaluate(aloe, paths["aloe"], params=state.params, step=int(state.step))
    baselines = answer_prior_baselines(monet.extract.questions_dir)
    print("\nAccuracy on the validation split (answer-prior baseline in brackets):")
    for name in ("descriptive", "explanatory_per_option", "predictive_per_option",
                 "counterfactual_per_option", "explanatory_per_question",
                 "predictive_per_question", "counterfactual_per_question"):
        if name in results:
            print(f"  {name:>28}: {results[name]:.3f}  ({baselines.get(name, float('nan')):.3f})")
    with open(os.path.join(workdir, "demo_results.json"), "w", encoding="utf-8") as f:
        json.dump({"results": results, "baselines": baselines}, f, indent=1, default=str)
    _done(start, f"results in {os.path.join(workdir, 'demo_results.json')}")
    del jax
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.INFO)  # The train loops' progress lines.
    from aloe import reporting  # pylint: disable=g-import-not-at-top
    reporting.configure_logging(show_libraries=_LOG_LIBRARIES.value)
    run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
