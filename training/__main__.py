"""`python -m training ...`: the `synthkg train` commands on their own, the form that
`accelerate launch -m training` and `torchrun -m training` start once per process."""

from training.cli import app

app(prog_name="python -m training")
