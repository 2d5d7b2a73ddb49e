"""API for OS images: list, create by URL or upload (the import runs on the images queue), cancel."""

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from images import selectors, services
from images.choices import Arch
from images.models import OSImage
from pinet.api import Idempotent, ReadAnyWriteOperator, role


class OSImageSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    format = serializers.CharField(read_only=True, help_text="Detected during the import; empty until then.")

    class Meta:
        model = OSImage
        fields = [
            "id",
            "name",
            "version",
            "arch",
            "kind",
            "source",
            "format",
            "sha256",
            "state",
            "stage",
            "bytes_done",
            "bytes_total",
            "percent",
            "error",
            "image_size",
            "artefact_sha256",
            "artefact_size",
            "created",
            "updated",
        ]
        read_only_fields = [f for f in fields if f not in ("name", "arch", "source", "sha256")]


class OSImageCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    arch = serializers.ChoiceField(choices=Arch.choices)
    source = serializers.CharField(required=False, help_text="http(s) URL or a path on the server")
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False, allow_blank=True)
    file = serializers.FileField(required=False, help_text="Upload instead of a source")

    def validate(self, attrs):
        if bool(attrs.get("source")) == bool(attrs.get("file")):
            raise serializers.ValidationError("Give either a source URL/path or a file, not both.")
        return attrs


class OSImageViewSet(Idempotent, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = OSImageSerializer
    permission_classes = [ReadAnyWriteOperator]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.image_list(user=self.request.user)

    def get_serializer(self, *args, **kwargs):
        serializer = super().get_serializer(*args, **kwargs)
        if role(self.request.user) != "operator":
            # The source URL may carry credentials or signed query strings: operators only.
            child = getattr(serializer, "child", serializer)
            child.fields.pop("source", None)
        return serializer

    @extend_schema(request=OSImageCreateSerializer, responses={202: OSImageSerializer})
    def create(self, request):
        data = OSImageCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        sha = (values.get("sha256") or "").lower()
        if values.get("file"):
            image = services.image_create_from_upload(
                by=request.user, name=values["name"], arch=values["arch"], upload=values["file"], sha256=sha
            )
        else:
            with transaction.atomic():
                image = services.image_create(
                    by=request.user, name=values["name"], arch=values["arch"], source=values["source"], sha256=sha
                )
                services.image_import_request(image=image)
        return Response(OSImageSerializer(image).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: OSImageSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(OSImageSerializer(services.image_import_cancel(image=self.get_object(), by=request.user)).data)
