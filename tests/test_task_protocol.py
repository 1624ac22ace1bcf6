"""The task registry and the Task protocol every registered task implements."""

import importlib
import inspect

import ml_collections
import pytest

from aloe import tasks

PROTOCOL_METHODS = sorted(name for name, value in vars(tasks.Task).items()
                          if inspect.isfunction(value) and not name.startswith("_"))


def test_protocol_methods_are_documented():
    assert PROTOCOL_METHODS == ["eval_batches", "eval_record", "init_params", "loss",
                                "num_eval_batches", "predict", "summarize", "summary_images",
                                "train_batch"]
    for name in PROTOCOL_METHODS:
        assert inspect.getdoc(getattr(tasks.Task, name)), name


@pytest.mark.parametrize("name", ["clevrer", "cater", "monet"])
def test_registered_tasks_implement_every_method(name):
    module, _, class_name = tasks.TASKS[name].partition(":")
    task_class = getattr(importlib.import_module(module), class_name)
    for method in PROTOCOL_METHODS:
        assert callable(getattr(task_class, method, None)), (name, method)
        assert inspect.getdoc(getattr(task_class, method)), (name, method)


def test_build_uses_the_registry(monkeypatch):
    class Echo:
        def __init__(self, config, *, process_index, process_count):
            self.args = (config.task, process_index, process_count)

    monkeypatch.setitem(tasks.TASKS, "echo", Echo)
    config = ml_collections.ConfigDict({"task": "echo"})
    assert tasks.build(config, process_index=1, process_count=2).args == ("echo", 1, 2)
    with pytest.raises(ValueError, match="registered already"):
        tasks.register("echo", Echo)
    with pytest.raises(ValueError, match=r"Unknown task 'nope' in config.task; known: 'clevrer'"):
        tasks.build(ml_collections.ConfigDict({"task": "nope"}))
