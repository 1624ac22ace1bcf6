"""The demo's stages: a stopped training run ends the demo; the object-state row's config."""

import pytest

from aloe import checkpointing
from aloe import demo
from aloe.data import object_states
from aloe.synthetic import toy_latents
from configs import demo as demo_config
from configs import test as test_config


def test_a_stopped_training_run_ends_the_demo_and_a_rerun_finishes_it(tmp_path):
    root, workdir = str(tmp_path / "toy"), str(tmp_path / "run")
    toy_latents.write_toy_dataset(root, num_train=16, num_valid=8, seed=0)
    config = test_config.get_config()
    config.data.root = root
    config.train.steps = 4
    stop = checkpointing.PreemptionFlag(signals=())
    stop.set()   # As SIGTERM would: the run saves after its first step and returns.
    with pytest.raises(SystemExit) as exited:
        demo.train_to_end(config, workdir, "ALOE", preemption=stop)
    assert exited.value.code == checkpointing.STOPPED_EXIT_STATUS
    assert checkpointing.Checkpointer(workdir, every_steps=1).all_steps() == [1]
    state = demo.train_to_end(config, workdir, "ALOE")   # Resumes and ends.
    assert int(state.step) == 4


def test_object_state_row_is_the_same_aloe_with_the_state_width():
    config = demo_config.get_config()
    states = demo.object_states_config(config.aloe, "somewhere")
    assert states.data.root == "somewhere"
    assert states.model.latent_dim == object_states.CLEVRER_LAYOUT.dim == 18
    changed = {k for k, v in states.to_dict().items() if v != config.aloe.to_dict()[k]}
    assert changed == {"data", "model"}
    differing = lambda a, b: {k for k in a if a[k] != b[k]}
    assert differing(states.data.to_dict(), config.aloe.data.to_dict()) == {"root"}
    assert differing(states.model.to_dict(), config.aloe.model.to_dict()) == {"latent_dim"}
    assert config.aloe.model.latent_dim == 16   # The demo's config is left as it was.
