"""Seed the three public token packs with USD and CNY prices (minor units); finance edits them in admin."""

from django.db import migrations

PACKS = [
    # code, name, tokens, sort, {currency: minor units}
    ("starter", "Starter", 100_000, 10, {"usd": 500, "cny": 3_500}),
    ("team", "Team", 1_000_000, 20, {"usd": 4_000, "cny": 28_000}),
    ("business", "Business", 10_000_000, 30, {"usd": 30_000, "cny": 210_000}),
]


def seed(apps, schema_editor):
    TokenPack = apps.get_model("billing", "TokenPack")
    TokenPackPrice = apps.get_model("billing", "TokenPackPrice")
    for code, name, tokens, sort_order, prices in PACKS:
        pack, _ = TokenPack.objects.get_or_create(
            code=code, defaults={"name": name, "tokens": tokens, "sort_order": sort_order}
        )
        for currency, unit_amount in prices.items():
            TokenPackPrice.objects.get_or_create(pack=pack, currency=currency, defaults={"unit_amount": unit_amount})


def unseed(apps, schema_editor):
    TokenPack = apps.get_model("billing", "TokenPack")
    TokenPack.objects.filter(code__in=[p[0] for p in PACKS], topups__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_stripe_topups")]

    operations = [migrations.RunPython(seed, unseed)]
