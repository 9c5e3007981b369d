"""`flask auth purge-unverified`: run it from cron."""

import click

from microblog.auth.routes import bp
from microblog.auth.signup import purge_unverified_accounts


@bp.cli.command("purge-unverified")
def purge_unverified_command():
    """Delete accounts whose address was not verified within UNVERIFIED_ACCOUNT_DAYS."""
    click.echo(f"Removed {purge_unverified_accounts()} unverified account(s).")
