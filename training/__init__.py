"""Distill-SynthKG: teacher outputs -> chat training set (dataset), LoRA fine-tuning of a small student
(trainer), and loading, merging and running the student (student). `synthkg train` is the CLI (cli)."""
