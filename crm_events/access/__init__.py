"""Who may stream and how many: auth (none/session/jwt and claims), limits (concurrent streams),
client_address (the client's address, X-Forwarded-For only from trusted proxies)."""
