"""The Flask bench app (issue 15): a JSON route that reads a query parameter and a header, and an HTML page
rendered from a Jinja template. Runs the same on keel-pool, granian, uWSGI and gunicorn (bench/wsgi.sh)."""
from flask import Flask, jsonify, render_template, request

app = Flask(__name__)

PRODUCTS = [{"id": n, "name": "product %d" % n, "price": "%d.%02d" % (n * 3, n * 7 % 100)} for n in range(1, 21)]


@app.route("/users/<int:user_id>")
def user(user_id):
    return jsonify(id=user_id, x=request.args.get("x", type=int), host=request.headers.get("Host"))


@app.route("/page")
def page():
    return render_template("page.html", title="Products", products=PRODUCTS)
