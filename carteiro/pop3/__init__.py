"""POP3 service (RFC 1939) on the shared store and authentication."""
