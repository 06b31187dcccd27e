"""The module registration: what we ask mParticle to send us."""

from __future__ import annotations

from typing import Any

from server.firehose import protocol

INTEGRATION_NAME = "audience-pull"
INTEGRATION_VERSION = "1.0"

API_KEY_SETTING = {
    "type": "text",
    "id": "apiKey",
    "name": "API Key",
    "description": "The integration API key generated in the audience-pull console.",
    "visible": True,
    "required": True,
    "confidential": True,
}


def registration_response(request: dict[str, Any]) -> dict[str, Any]:
    """Answer a module registration request.

    We need the MPID (``allow_access_mpid``) because the tag looks visitors up by
    it, and the API key as an account setting to find the customer's account.
    """
    return protocol.response(
        request,
        name=INTEGRATION_NAME,
        description="Target mParticle audiences in A/B tests and personalisation.",
        version=INTEGRATION_VERSION,
        permissions={"allow_access_mpid": True},
        audience_processing_registration={"account_settings": [API_KEY_SETTING]},
    )
