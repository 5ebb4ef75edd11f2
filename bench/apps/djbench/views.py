from django.http import JsonResponse

from .models import Item


def items(request):
    rows = Item.objects.order_by("id").values("id", "name", "price")[:10]
    return JsonResponse({"items": [dict(row, price=str(row["price"])) for row in rows]})
