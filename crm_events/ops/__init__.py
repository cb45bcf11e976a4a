"""What operators and browsers look at: views (/, /healthz, /readyz), readiness, metrics_view
(/metrics), viewer (the live event page), asyncapi_view (/asyncapi.yaml), error_views (JSON
400/500), log_format (redacted plain or JSON logs)."""
