"""Integrations > Tag: the account's tag key and the snippet sites embed."""

from __future__ import annotations

from typing import Any

from flask import g
from flask import render_template
from flask import url_for
from markupsafe import escape

from server.console import bp
from server.console.auth import login_required
from server.models import Account

#: The check a site owner runs in the browser's console on their own page. It
#: prints the MPID the tag reads, or undefined when there is none yet.
MPID_CHECK = "window.mParticle?.Identity?.getCurrentUser?.()?.getMPID?.()"


def tag_snippet(account: Account) -> str:
    """Return the ``<script>`` element that loads the tag for ``account``.

    The URL is built from the address the console was opened at, as the
    Firehose endpoint on the connector page is. Behind a proxy that ends TLS,
    set ``PROXY_FIX_HOPS`` so the app sees the public scheme and host.
    """
    src = url_for("static", filename="tag.js", _external=True)
    return (
        f'<script src="{escape(src)}" data-tag-key="{escape(account.tag_key)}"'
        " async></script>"
    )


def anti_flicker_snippet() -> str:
    """Return an example of the optional anti-flicker ``<script>`` element."""
    src = url_for("static", filename="anti-flicker.js", _external=True)
    return (
        f'<script src="{escape(src)}" data-hide=".hero, #offer"'
        ' data-timeout="2000"></script>'
    )


@bp.get("/integrations/tag")
@login_required
def tag() -> Any:
    return render_template(
        "console/tag.html",
        tag_key=g.account.tag_key,
        snippet=tag_snippet(g.account),
        anti_flicker=anti_flicker_snippet(),
        mpid_check=MPID_CHECK,
    )
