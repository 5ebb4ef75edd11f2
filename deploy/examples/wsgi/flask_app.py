"""A Flask example (Debian python3-flask, or `pip install flask` in a venv made by /usr/bin/python3):

    /usr/bin/python3 -m venv --system-site-packages /srv/venv
    keel-pool --http-socket 127.0.0.1:8000 --chdir deploy/examples/wsgi --wsgi flask_app:app -H /srv/venv --threads 4
"""
from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route('/')
def index():
    return 'Hello world!\n'


@app.route('/users/<int:user_id>')
def user(user_id):
    return jsonify(id=user_id, query=request.args.to_dict())


@app.route('/old')
def old():
    return redirect(url_for('index'))
