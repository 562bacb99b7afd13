from django.apps import AppConfig


class StreamingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "streaming"
    verbose_name = "Live streams"

    def ready(self) -> None:
        from billing.statements import usage_source_register
        from streaming.selectors import stream_statement_lines, stream_usage_by_day
        from transcription.selectors import usage_extra_register

        usage_source_register(stream_statement_lines)
        usage_extra_register(stream_usage_by_day)
