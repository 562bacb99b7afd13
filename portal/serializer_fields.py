"""Serializers built for every request whose declared fields are copied, not rebuilt.

DRF gives each serializer instance its own fields by deep-copying the class's declared fields, and a field's deep
copy calls its constructor again (validators, error messages, choices): for the submit's serializer that was ~4% of
the web tier's CPU under load (issue 13). A shallow copy gives each instance fields of its own for everything that
binding and validation set on a field (name, parent, label, source) and shares only what nothing changes after the
constructor (validators, messages, choices, immutable defaults). A child field (ListField's) is copied the same way,
since binding sets its parent too. Anything else (a nested serializer, a mutable default) is deep-copied as DRF does.
"""

from __future__ import annotations

import copy

from rest_framework.fields import Field, empty
from rest_framework.serializers import BaseSerializer

IMMUTABLE = (str, int, float, bool, bytes, type(None), tuple, frozenset)


class CopiedFieldsMixin:
    """Mix into a Serializer (before it) to copy its declared fields shallowly per instance."""

    def get_fields(self) -> dict[str, Field]:
        return {name: _copied(field) for name, field in self._declared_fields.items()}


def _copied(field: Field) -> Field:
    if isinstance(field, BaseSerializer) or not _plain_default(field):
        return copy.deepcopy(field)
    clone = copy.copy(field)
    child = getattr(field, "child", None)
    if isinstance(child, Field):
        clone.child = _copied(child)
        clone.child.parent = clone  # the rest of the child's binding (by ListField's constructor) is the same
    return clone


def _plain_default(field: Field) -> bool:
    default = getattr(field, "default", empty)
    return default is empty or callable(default) or isinstance(default, IMMUTABLE)
