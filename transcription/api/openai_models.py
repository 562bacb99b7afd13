"""OpenAI-compatible `GET /v1/models`, `GET /v1/models/{id}` and `POST /v1/audio/translations`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from portal.errors import InvalidRequest, NotFound
from tenants.api.base import TenantApi
from transcription.api.openai_params import REFUSED_MODELS, served_models

OWNER = "tingxie"


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["model"])
    created = serializers.IntegerField(help_text="Unix time the model was published; 0: not known here.")
    owned_by = serializers.CharField()


def model_object(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": OWNER}


class OpenAIModelListApi(TenantApi):
    @extend_schema(
        responses=inline_serializer(
            "OpenAIModelList",
            {"object": serializers.ChoiceField(choices=["list"]), "data": OpenAIModelSerializer(many=True)},
        ),
        operation_id="v1_models_list",
        summary="The models this deployment serves (OpenAI's names are aliases of the deployed model)",
    )
    def get(self, request):
        return Response({"object": "list", "data": [model_object(m) for m in served_models()]})


class OpenAIModelRetrieveApi(TenantApi):
    @extend_schema(responses=OpenAIModelSerializer, summary="One served model")
    def get(self, request, model_id: str):
        if model_id not in served_models():
            hint = REFUSED_MODELS.get(model_id, f"This deployment serves: {', '.join(served_models())}.")
            raise NotFound(f"The model {model_id!r} is not served here. {hint}", code="model_not_found", param="model")
        return Response(model_object(model_id))


class OpenAITranslationApi(TenantApi):
    @extend_schema(
        request={"multipart/form-data": OpenApiTypes.OBJECT},
        responses={400: OpenApiResponse(description="Translation is not offered (code translation_not_supported).")},
        summary="Translation: not offered (the deployed model transcribes; it does not translate)",
    )
    def post(self, request):
        raise InvalidRequest(
            "Translation is not offered by this deployment: its model transcribes speech in the language spoken "
            "but does not translate. Use POST /v1/audio/transcriptions.",
            code="translation_not_supported",
        )
