"""The tutorial's library: model choice, evaluation, GRPO training setup and run outputs.

Learners meet `rewards.py` and `data.py` first (top level); everything the notebooks and the
two command lines share beyond them lives here. docs/architecture.md has the module map.
"""
