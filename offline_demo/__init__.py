"""The offline demonstration: a toy arithmetic task, a tiny Qwen2 and its warm start.

Together they let the whole series run on a CPU without network: the tiny model has
Qwen2.5's architecture, special tokens and chat template, and the warm start gives it a
skill (toy arithmetic) plus a bad habit (blurting) for GRPO to correct.
"""
