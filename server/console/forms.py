"""The console's forms. Each one validates its own input and its CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms import PasswordField
from wtforms import StringField
from wtforms.validators import DataRequired
from wtforms.validators import Length
from wtforms.validators import Optional
from wtforms.validators import Regexp

#: Loose on purpose: the address only has to be deliverable-looking, because
#: sign-in compares it with the stored one.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class SignInForm(FlaskForm):
    email = StringField(
        "Email",
        filters=[_strip],
        validators=[
            DataRequired("Enter your email address."),
            Length(max=254, message="Email addresses are at most 254 characters."),
            Regexp(EMAIL_PATTERN, message="Enter an email address like a@example.com."),
        ],
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password.")]
    )


class ConnectorForm(FlaskForm):
    name = StringField(
        "Connector name",
        validators=[
            DataRequired("Give the connector a name."),
            Length(max=100, message="Connector names are at most 100 characters."),
        ],
    )


class ApiKeyForm(FlaskForm):
    label = StringField(
        "Label",
        validators=[
            DataRequired(
                "Give the key a label, such as the mParticle setup it is for."
            ),
            Length(max=100, message="Labels are at most 100 characters."),
        ],
    )
    #: One-time token that makes a resubmitted form (a reload) create nothing.
    request_token = HiddenField()


class RotateKeyForm(FlaskForm):
    label = StringField(
        "New label",
        validators=[
            Optional(),
            Length(max=100, message="Labels are at most 100 characters."),
        ],
    )
    request_token = HiddenField()


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token is sent."""


class SegmentForm(FlaskForm):
    name = StringField(
        "Segment name",
        validators=[
            DataRequired("Give the segment a name."),
            Length(max=200, message="Segment names are at most 200 characters."),
        ],
    )
    #: The condition as JSON, written by the builder script and checked again
    #: on the server with the evaluation core's parser.
    condition = HiddenField()
    mpid = StringField("MPID")
