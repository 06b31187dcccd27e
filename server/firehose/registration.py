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


#: Identities we ask mParticle to send, hashed, so that an erasure request by
#: email or customer ID finds the MPIDs to erase. mParticle lower-cases values
#: before hashing them.
IDENTITY_PERMISSIONS = [
    {"type": "email", "encoding": "sha256", "required": False},
    {"type": "customer", "encoding": "sha256", "required": False},
]


def registration_response(
    request: dict[str, Any], dsr_domain: str | None = None
) -> dict[str, Any]:
    """Build the response to a module registration request.

    We need the MPID (``allow_access_mpid``) because the tag looks visitors up by
    it, the audience user attributes to store them per member, hashed identities
    to serve erasure requests, and the API key as an account setting to find
    the customer's account. Erasure requests authenticate with the same key.

    :param dsr_domain: the host name mParticle calls for DSR requests; the
        ``domain`` field is left out when it is not configured.
    """
    dsr_registration: dict[str, Any] = {
        "account_settings": [API_KEY_SETTING],
        "supported_dsr_types": ["erasure"],
    }
    if dsr_domain:
        dsr_registration["domain"] = dsr_domain

    return protocol.response(
        request,
        name=INTEGRATION_NAME,
        description="Target mParticle audiences in A/B tests and personalisation.",
        version=INTEGRATION_VERSION,
        permissions={
            "allow_access_mpid": True,
            "allow_audience_user_attributes": True,
            "user_identities": IDENTITY_PERMISSIONS,
        },
        audience_processing_registration={"account_settings": [API_KEY_SETTING]},
        dsr_processing_registration=dsr_registration,
    )
