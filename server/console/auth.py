"""Console sign-in: users, password checks, sessions and the sign-in throttle."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from server.cli import new_tag_key
from server.console import bp
from server.console.forms import EMAIL_PATTERN
from server.console.forms import ActionForm
from server.console.forms import SignInForm
from server.extensions import db
from server.models import Account
from server.models import SignInThrottle
from server.models import User
from server.models import utcnow

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
#: Number of failed sign-ins for one email within FAILURE_WINDOW that locks it.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCK_DURATION = timedelta(minutes=15)

# Checked when the email is unknown, so that a wrong email takes as long as a
# wrong password and response times do not reveal which emails have users.
_DUMMY_HASH = generate_password_hash("not a real password")


class UserError(ValueError):
    """Invalid input for a new console user."""


def create_user(account_name: str, email: str, password: str) -> User:
    """Create a user in the named account, creating the account when missing.

    :raises UserError: if the email is invalid or taken, or the password is
        shorter than :data:`MIN_PASSWORD_LENGTH`.
    """
    email = normalise_email(email)
    if not re.match(EMAIL_PATTERN, email) or len(email) > 254:
        raise UserError(f"Invalid email address {email!r}.")

    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(
            f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters."
        )

    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise UserError(f"A user with the email {email!r} already exists.")

    account_name = account_name.strip()
    if not account_name or len(account_name) > 100:
        raise UserError("The account name must have 1 to 100 characters.")

    account = db.session.scalar(select(Account).where(Account.name == account_name))
    if account is None:
        account = Account(name=account_name, tag_key=new_tag_key())
        db.session.add(account)

    user = User(
        account=account, email=email, password_hash=generate_password_hash(password)
    )
    db.session.add(user)
    return user


def normalise_email(email: str) -> str:
    return email.strip().lower()


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Redirect to the sign-in page unless a user is signed in."""

    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("console.sign_in", next=request.path))

        return view(**kwargs)

    return wrapped


def end_sessions(user: User) -> None:
    """Invalidate every session of ``user``, on every device, at the next commit.

    Flask keeps the session in a signed cookie, so clearing it on sign-out
    does not stop a copy of the cookie from working. Each session stores the
    user's ``session_epoch`` from sign-in, and :func:`_load_user` rejects a
    session whose epoch is no longer the user's. Sign-out calls this, and so
    must any future way to change or reset a password.
    """
    user.session_epoch = User.session_epoch + 1


@bp.before_request
def _load_user() -> None:
    g.user = _session_user()
    g.account = g.user.account if g.user is not None else None


def _session_user() -> User | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None

    user = db.session.get(User, user_id)
    if user is None or session.get("session_epoch") != user.session_epoch:
        # Signed out elsewhere, or the user was deleted: forget the cookie.
        session.clear()
        return None

    return user


@bp.route("/", methods=["GET", "POST"])
def sign_in() -> Any:
    if g.user is not None and request.method == "GET":
        return redirect(url_for("console.hub"))

    form = SignInForm()
    if form.validate_on_submit():
        user, error = _authenticate(form.email.data, form.password.data)
        if user is not None:
            return _start_session(user)

        form.password.errors.append(error)

    status = 400 if form.errors else 200
    return render_template("console/sign_in.html", form=form), status


@bp.post("/sign-out")
def sign_out() -> Any:
    if ActionForm().validate_on_submit():
        if g.user is not None:
            end_sessions(g.user)
            db.session.commit()
            logger.info("User %s signed out", g.user.id)

        session.clear()
        flash("You are signed out.", "info")

    return redirect(url_for("console.sign_in"))


def _authenticate(email: str, password: str) -> tuple[User | None, str]:
    """Return the user for the credentials, or ``None`` and the error to show."""
    email = normalise_email(email)
    throttle = db.session.get(SignInThrottle, email)
    now = utcnow()
    if throttle is not None and throttle.locked_until and throttle.locked_until > now:
        minutes = _minutes_until(throttle.locked_until)
        logger.warning(
            "Rejected sign-in for a locked email (%d failures)", MAX_FAILURES
        )
        return None, (
            "Too many failed sign-ins for this email. Try again in"
            f" {minutes} minute{'s' if minutes != 1 else ''}."
        )

    user = db.session.scalar(select(User).where(User.email == email))
    password_hash = user.password_hash if user is not None else _DUMMY_HASH
    if check_password_hash(password_hash, password) and user is not None:
        if throttle is not None:
            db.session.delete(throttle)

        return user, ""

    _record_failure(email, throttle, now)
    try:
        db.session.commit()
    except IntegrityError:
        # Another request created the throttle row for this email first.
        db.session.rollback()
        logger.warning("Did not count a failed sign-in: concurrent failure")

    return None, "Invalid email or password."


def _record_failure(email: str, throttle: SignInThrottle | None, now: datetime) -> None:
    if throttle is None or now - throttle.first_failure_at > FAILURE_WINDOW:
        if throttle is not None:
            db.session.delete(throttle)
            db.session.flush()

        throttle = SignInThrottle(email=email, failure_count=0, first_failure_at=now)
        db.session.add(throttle)

    throttle.failure_count += 1
    if throttle.failure_count >= MAX_FAILURES:
        throttle.locked_until = now + LOCK_DURATION
        logger.warning(
            "Locked console sign-in for %s minutes after %d failures",
            int(LOCK_DURATION.total_seconds() // 60),
            throttle.failure_count,
        )


def _minutes_until(moment: datetime) -> int:
    seconds = (moment - utcnow()).total_seconds()
    return max(1, int(-(-seconds // 60)))


def _start_session(user: User) -> Any:
    user.last_sign_in_at = utcnow()
    db.session.commit()
    # A fresh session on sign-in, so no value set before it survives.
    session.clear()
    session["user_id"] = user.id
    session["session_epoch"] = user.session_epoch
    session.permanent = True
    logger.info("User %s signed in to account %s", user.id, user.account_id)
    return redirect(_safe_next(request.args.get("next")))


def _safe_next(target: str | None) -> str:
    """Return ``target`` if it is a console path on this site, else the hub."""
    if target and target.startswith("/console/") and "//" not in target:
        return target

    return url_for("console.hub")
