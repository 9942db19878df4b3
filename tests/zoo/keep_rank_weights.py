"""Started by torchrun in test_distributed.py: `zoo run ARGS` as a user types it, after which every
rank saves the weights it ended with (rank 0 alone writes the run directory), so ranks can be compared.

usage: torchrun ... keep_rank_weights.py FOLDER run ARGS...
"""

import os
import sys
from pathlib import Path

from safetensors.torch import save_model

import zoo.api
from zoo.cli import cli

folder, args = Path(sys.argv[1]), sys.argv[2:]
run = zoo.api.run


def run_and_keep(**settings):
    result = run(**settings)
    save_model(result.model, str(folder / f"rank{os.environ['RANK']}.safetensors"))
    return result


zoo.api.run = run_and_keep
cli.main(args, prog_name="zoo")
