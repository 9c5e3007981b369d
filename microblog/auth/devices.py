"""The devices page: where you are signed in, and signing any of them out."""

import logging

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from microblog.auth.forms import SignOutDeviceForm
from microblog.auth.models import SessionRecord
from microblog.auth.routes import bp
from microblog.auth.sessions import (
    current_record,
    device_name,
    live_records,
    revoke,
    sign_out,
)
from microblog.extensions import db

audit = logging.getLogger("microblog.audit")


@bp.route("/sessions")
@login_required
def sessions():
    """Every device signed in to your account, this one marked."""
    return render_template(
        "auth/sessions.html",
        title=_("Your devices"),
        records=live_records(current_user),
        current=current_record(),
        form=SignOutDeviceForm(),
        device_name=device_name,
    )


@bp.route("/sessions/<int:record_id>/revoke", methods=["POST"])
@login_required
def revoke_session(record_id):
    """Sign one device out; signing out this one is the ordinary sign-out."""
    if not SignOutDeviceForm().validate_on_submit():
        abort(400)
    record = db.session.scalar(
        sa.select(SessionRecord).where(
            SessionRecord.id == record_id, SessionRecord.user_id == current_user.id
        )
    )
    if record is None:
        abort(404)  # another user's record is none of yours
    if record.id == current_record().id:
        said = _("You have been signed out.")  # in the language of the user, before they go
        sign_out()
        flash(said, "info")
        return redirect(url_for("auth.login"))
    revoke([record])
    audit.info("session.revoked user=%s session=%s", current_user.id, record.id)
    flash(_("%(device)s has been signed out.", device=device_name(record.device)), "success")
    return redirect(url_for("auth.sessions"))


@bp.route("/sessions/revoke_others", methods=["POST"])
@login_required
def revoke_other_sessions():
    """Sign out everywhere else: every device but this one."""
    if not SignOutDeviceForm().validate_on_submit():
        abort(400)
    this = current_record()
    others = [record for record in live_records(current_user) if record.id != this.id]
    revoke(others)
    audit.info("session.revoked_others user=%s count=%s", current_user.id, len(others))
    flash(_("Every other device has been signed out."), "success")
    return redirect(url_for("auth.sessions"))
