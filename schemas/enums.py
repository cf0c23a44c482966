"""The enumerations of the wire contract."""

STATUSES = ("1000", "1002", "1004", "1008", "1020", "1022", "1024", "1026")
STORED_ORDER_TYPES = ("NEW", "RENEWAL", "RETURN", "TRANSFER")
CREATE_ORDER_TYPES = ("NEW", "RENEWAL", "RETURN", "PREVIEW")
# Order types of the partner API this gateway does not serve: answered 1117 naming orderType.
UNSUPPORTED_ORDER_TYPES = ("PREVIEW_RENEWAL", "SWITCH", "PREVIEW_SWITCH", "REVERT_SWITCH", "PREVIEW_REVERT_SWITCH")
# The order events of the change feed and the webhooks.
EVENT_TYPES = ("order.created", "order.status_changed", "order.updated")
