"""nbval runs each notebook's cells in order in one kernel: with two pytest-xdist workers
(`make test`), every notebook is one group, and 06 runs after 05 in the same worker because
it evaluates the model that 05 trains into runs/notebook/."""

import pytest

SEQUENCE = {"05_grpo_training.ipynb": "notebooks-05-06", "06_evaluation.ipynb": "notebooks-05-06"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = SEQUENCE.get(item.path.name, item.path.name)
        item.add_marker(pytest.mark.xdist_group(group))
