"""Makes the bench's SQLite file (DJBENCH_DB): the table, then 100 items."""
import os
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from djbench.models import Item  # noqa: E402

call_command("migrate", run_syncdb=True, verbosity=0)
Item.objects.all().delete()
Item.objects.bulk_create(Item(name="item %d" % n, price=Decimal(n) / 4) for n in range(1, 101))
