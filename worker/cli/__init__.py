"""The `charq` command: `charq --help`. Each module adds its own subcommands to `main`."""
from __future__ import annotations

import click

from worker.cli.client import corpus_group, jobs_group, models_group
from worker.cli.engine import eval_command, sample_command, train_command
from worker.cli.keys import keys
from worker.cli.service import api, migrate, up, worker


@click.group()
def main() -> None:
    """charq: train character-level LSTMs and sample text from them."""


main.add_command(train_command)
main.add_command(sample_command)
main.add_command(eval_command)
for command in (up, api, worker, migrate, keys):
    main.add_command(command)
for group in (corpus_group, jobs_group, models_group):  # client commands: a server's nouns
    main.add_command(group)
