from django.apps import AppConfig


class CrmEventsConfig(AppConfig):
    name = "crm_events"
    verbose_name = "CRM events"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from crm_events.config import config_cache_clear

        # Tests override settings; the typed records are cached, so drop them then.
        setting_changed.connect(config_cache_clear, dispatch_uid="crm_events_config")
