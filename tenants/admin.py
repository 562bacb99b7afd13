from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin

from tenants.models import ApiKey, Invitation, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]
    exclude = ["webhook_secret"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "tenant__slug"]
    raw_id_fields = ["invited_by", "accepted_by"]
    readonly_fields = ["token"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "tenant", "last_used_at"]
    list_filter = [*APIKeyModelAdmin.list_filter, "tenant"]
