from django.apps import AppConfig


class TranscriptionConfig(AppConfig):
    name = "transcription"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing.statements import usage_source_register
        from transcription import checks  # noqa: F401  (registers system checks)
        from transcription.selectors import transcription_statement_lines

        usage_source_register(transcription_statement_lines)
