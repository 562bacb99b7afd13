"""portal.serializer_fields: a per-request serializer whose declared fields are copied shallowly validates exactly as
DRF's deep-copied fields do, and no instance's binding or state reaches another's."""

from __future__ import annotations

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework import serializers

from portal.serializer_fields import CopiedFieldsMixin
from transcription.api.serializers import TranscriptionCreateSerializer


class DeepCopied(serializers.Serializer):
    """TranscriptionCreateSerializer's fields and checks, with DRF's own deep copies."""


for _name, _field in TranscriptionCreateSerializer._declared_fields.items():
    DeepCopied._declared_fields[_name] = _field
DeepCopied.validate_webhook_url = TranscriptionCreateSerializer.validate_webhook_url
DeepCopied.validate_speaker_ids = TranscriptionCreateSerializer.validate_speaker_ids


def _file() -> SimpleUploadedFile:
    return SimpleUploadedFile("a.wav", b"RIFF....WAVE")


INPUTS = [
    {},
    {"language": "zh", "itn": "false", "vad": "0", "hotwords": "阿里\n巴巴"},
    {"language": "xx", "speakers": "0", "min_speakers": "99", "max_speakers": "abc"},
    {"speaker_ids": ["a, b", " c ,", ","], "diarize": "true", "speakers": "3"},
    {"webhook_url": "ftp://example.com/x", "hotword_list": "-1", "word_timestamps": "maybe"},
    {"webhook_url": "https://example.com/hook", "hotword_list": "12", "word_timestamps": "1"},
    {"webhook_url": "x" * 2000},
]


@pytest.mark.parametrize("data", INPUTS)
@pytest.mark.parametrize("with_file", [True, False])
def test_validation_is_drfs_own(data, with_file):
    results = []
    for cls in (TranscriptionCreateSerializer, DeepCopied):
        payload = {**data, **({"file": _file()} if with_file else {})}
        serializer = cls(data=payload)
        valid = serializer.is_valid()
        validated = {k: v for k, v in serializer.validated_data.items() if k != "file"} if valid else None
        results.append((valid, validated, {k: [str(e) for e in v] for k, v in serializer.errors.items()}))
    assert results[0] == results[1]


def test_each_instance_has_fields_of_its_own():
    first, second = TranscriptionCreateSerializer(data={}), TranscriptionCreateSerializer(data={})
    for name, field in first.fields.items():
        other = second.fields[name]
        assert field is not other and field is not TranscriptionCreateSerializer._declared_fields[name]
        assert field.parent is first and other.parent is second and field.field_name == name
    child, other_child = first.fields["speaker_ids"].child, second.fields["speaker_ids"].child
    assert child is not other_child and child.parent is first.fields["speaker_ids"] and child.root is first
    declared = TranscriptionCreateSerializer._declared_fields["speaker_ids"]
    assert declared.child.parent is declared  # the class's own fields are never bound to an instance


def test_nested_serializers_and_mutable_defaults_are_deep_copied():
    class Nested(serializers.Serializer):
        x = serializers.IntegerField()

    class Form(CopiedFieldsMixin, serializers.Serializer):
        nested = Nested(required=False)
        tags = serializers.ListField(child=serializers.CharField(), default=list)
        names = serializers.JSONField(default={"a": 1})

    one, two = Form(), Form()
    assert one.fields["nested"] is not two.fields["nested"]
    assert one.fields["nested"].fields["x"] is not two.fields["nested"].fields["x"]
    assert one.fields["names"].default is not two.fields["names"].default  # a shared dict would leak between requests


def test_concurrent_requests_validate_independently():
    errors = []

    def submit(i: int):
        for _ in range(50):
            serializer = TranscriptionCreateSerializer(data={"file": _file(), "speakers": str(i % 3)})
            if serializer.is_valid() != bool(i % 3) or (
                serializer.is_valid() and serializer.validated_data["speakers"] != i % 3
            ):
                errors.append(i)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
