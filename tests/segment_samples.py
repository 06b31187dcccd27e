"""Segment definitions shared by the core's unit tests."""

CART_ABANDONERS = {
    "name": "Cart abandoners",
    "condition": {
        "type": "group",
        "operator": "and",
        "criteria": [
            {
                "type": "audience",
                "connector_id": 1,
                "audience_id": 456,
                "operator": "in",
            },
            {
                "type": "group",
                "operator": "or",
                "criteria": [
                    {
                        "type": "audience",
                        "connector_id": 1,
                        "audience_id": 789,
                        "operator": "not_in",
                    }
                ],
            },
        ],
    },
}
