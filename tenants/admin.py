from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin

from tenants.models import ApiKey, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "tenant", "last_used_at"]
    list_filter = [*APIKeyModelAdmin.list_filter, "tenant"]
