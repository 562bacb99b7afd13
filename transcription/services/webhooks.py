"""Outbound webhooks: the signed result POSTed to the transcription's webhook_url, retried with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from portal import metrics
from transcription.models import Transcription
from transcription.outbound import BlockedTarget, post_pinned
from transcription.representation import transcription_representation

logger = logging.getLogger(__name__)

WEBHOOK_BACKOFF = (10, 60, 300, 1800, 7200)


def webhook_payload(transcription: Transcription) -> bytes:
    return json.dumps(
        {"type": f"transcription.{transcription.status}", "data": transcription_representation(transcription)},
        ensure_ascii=False,
    ).encode()


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_deliver(*, transcription_id, attempt: int = 1) -> bool:
    """POST the signed result to the transcription's webhook_url; on failure schedule a retry with backoff."""
    t = Transcription.objects.select_related("tenant").filter(pk=transcription_id).first()
    if t is None or not t.webhook_url:
        return False
    body = webhook_payload(t)
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tingxie-Webhook/1",
        "Tingxie-Signature": webhook_sign(secret=t.tenant.webhook_secret, timestamp=ts, body=body),
        "Tingxie-Event-Id": f"{t.pk}:{t.status}",
    }
    ok, error = False, ""
    try:
        allow = settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS
        status = post_pinned(t.webhook_url, body, headers, timeout=10, allow_private=allow).status
        ok = 200 <= status < 300
        error = "" if ok else f"The receiver answered HTTP {status}."
    except BlockedTarget as exc:
        logger.warning("Webhook for %s refused: %s", transcription_id, exc)
        metrics.WEBHOOK_DELIVERIES.labels(outcome="blocked").inc()
        Transcription.objects.filter(pk=t.pk).update(
            webhook_status="blocked", webhook_attempts=attempt, webhook_error=str(exc)[:500]
        )
        return False
    except Exception as exc:  # noqa: BLE001 - any delivery failure is retried
        logger.info("Webhook for %s attempt %s failed: %s", transcription_id, attempt, exc)
        error = f"{type(exc).__name__}: {exc}"[:500]
    metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered" if ok else "failed").inc()
    Transcription.objects.filter(pk=t.pk).update(
        webhook_status="delivered" if ok else ("retrying" if attempt <= len(WEBHOOK_BACKOFF) else "failed"),
        webhook_attempts=attempt,
        webhook_error=error,
    )
    if not ok and attempt <= len(WEBHOOK_BACKOFF):
        from django_q.models import Schedule

        Schedule.objects.create(
            func="transcription.tasks.webhook_deliver_task",
            args=repr((str(t.pk), attempt + 1)),
            schedule_type=Schedule.ONCE,
            repeats=1,
            next_run=timezone.now() + timedelta(seconds=WEBHOOK_BACKOFF[attempt - 1]),
            name=f"webhook-{t.pk}-{attempt + 1}",
        )
    return ok
