"""A FastAPI JSON endpoint with a path and a query parameter, as the issue's FastAPI row measures."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int, q: str = ""):
    return {"item_id": item_id, "q": q, "tags": ["a", "b"]}
