"""Security auditing: the audit log, anomaly detectors and alert delivery.

The servers feed :class:`Detectors` with login, download and deletion events, and hand
each :class:`Alert` it returns to :class:`AlertDispatcher`, which writes it to the
:class:`AuditLog` and, if configured, posts it to a webhook and mails a notice.
"""

from __future__ import annotations

from carteiro.audit.alerts import (
    AlertDispatcher,
    AlertSettings,
    MailSender,
    alert_settings_from_settings,
)
from carteiro.audit.anomalies import (
    Alert,
    AnomalyPolicy,
    Detectors,
    NetworkHistory,
    anomaly_policy_from_settings,
)
from carteiro.audit.log import AuditLog

__all__ = [
    "Alert",
    "AlertDispatcher",
    "AlertSettings",
    "AnomalyPolicy",
    "AuditLog",
    "Detectors",
    "MailSender",
    "NetworkHistory",
    "alert_settings_from_settings",
    "anomaly_policy_from_settings",
]
