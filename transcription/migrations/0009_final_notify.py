"""PostgreSQL: NOTIFY `tingxie_transcription_final` with a transcription's id when its status becomes final, so that
long-polls answer at once (portal.longpoll.ColumnWatch listens; issue 13). Every path that ends a job (finalize,
fail, cancel, sweeper, admin) updates the status column, so one trigger covers them all. Nothing on SQLite."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION tingxie_transcription_final_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tingxie_transcription_final', NEW.id::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER tingxie_transcription_final
    AFTER UPDATE OF status ON transcription_transcription
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'canceled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION tingxie_transcription_final_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS tingxie_transcription_final ON transcription_transcription;
DROP FUNCTION IF EXISTS tingxie_transcription_final_notify();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("transcription", "0008_speakers")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
