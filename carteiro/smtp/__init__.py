"""SMTP: inbound, submission, outbound queue and mail authentication (SPF, DKIM, DMARC)."""
