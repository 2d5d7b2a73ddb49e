from rest_framework import serializers

from provisioning.models import ConfigRevision, InstallJob, JobEvent


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ["created", "source", "stage", "percent", "message"]


class InstallJobSerializer(serializers.ModelSerializer):
    node = serializers.SlugRelatedField(slug_field="hostname", read_only=True)
    events = JobEventSerializer(many=True, read_only=True)

    class Meta:
        model = InstallJob
        fields = [
            "id",
            "node",
            "image",
            "status",
            "stage",
            "percent",
            "error",
            "created",
            "started_at",
            "finished_at",
            "deadline",
            "events",
        ]
        read_only_fields = fields


class ConfigRevisionSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ConfigRevision
        fields = ["id", "site", "backend", "status", "sha256", "validator_output", "diff", "created"]
        read_only_fields = fields
